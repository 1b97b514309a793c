import numpy as np
import pandas as pd
import pytest
import torch

from slmrec_lib import data as D


def test_beauty_loads_with_published_counts(real_data_dir):
    ds = D.load_dataset("beauty", data_dir=real_data_dir, download=False)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (22363, 12101, 198502)
    assert all(s.min() >= 1 and s.max() <= ds.n_items for s in ds.sequences)


def test_games_has_a_title_for_every_item(real_data_dir):
    ds = D.load_dataset("games", data_dir=real_data_dir, download=False)
    assert (ds.n_users, ds.n_items) == (50546, 16859)
    assert len(ds.titles) == ds.n_items + 1 and all(ds.titles[1:])
    assert "&amp;" not in "".join(ds.titles)  # HTML entities decoded


def _cds_sample(real_data_dir):
    return real_data_dir / "amazon2018" / "CDs_and_Vinyl" / "CDs_and_Vinyl.sample.csv"


def test_cds_sample_five_core_is_empty_and_says_so(real_data_dir):
    with pytest.raises(D.DataError, match="no interactions left"):
        D.load_dataset(str(_cds_sample(real_data_dir)))


def _reference_kcore(path, k):
    """The same preprocessing written independently with pandas."""
    df = pd.read_csv(path, header=None, names=["item", "user", "rating", "ts"])
    df = df[df.rating > 3].reset_index(drop=True)
    df["row"] = np.arange(len(df))
    df = df.sort_values(["ts", "row"], kind="stable").drop_duplicates(["user", "item"], keep="first")
    while True:
        n = len(df)
        df = df[df.groupby("user")["item"].transform("size") >= k]
        df = df[df.groupby("item")["user"].transform("size") >= k]
        if len(df) == n:
            return df


def test_cds_sample_three_core_matches_pandas(real_data_dir):
    path = _cds_sample(real_data_dir)
    ds = D.load_dataset(str(path), preprocess=D.Preprocess(user_k=3, item_k=3))
    ref = _reference_kcore(path, 3)
    assert ds.n_users == ref.user.nunique() > 0
    assert ds.n_items == ref.item.nunique()
    assert ds.n_interactions == len(ref)
    # every sequence is in time order: map ids back to raw ASINs and compare with the reference
    ts = {(u, i): t for u, i, t in zip(ref.user, ref.item, ref.ts)}
    user_ids, item_ids = ds.info["user_ids"], ds.info["item_ids"]
    for u, seq in enumerate(ds.sequences):
        times = [ts[(user_ids[u], item_ids[i - 1])] for i in seq]
        assert times == sorted(times)


def test_official_code_preset_differs_from_paper(real_data_dir):
    path = _cds_sample(real_data_dir)
    code = D.Preprocess.official_code()
    assert (code.rating_strict, code.item_k, code.iterative, code.order) == (False, 20, False, "item_id")
    relaxed = D.Preprocess(min_rating=3.0, rating_strict=False, user_k=3, item_k=3)
    strict = D.Preprocess(user_k=3, item_k=3)
    assert D.load_dataset(str(path), relaxed).n_interactions > D.load_dataset(str(path), strict).n_interactions


def test_item_id_order_sorts_by_product_id():
    users = np.array(["u"] * 5)
    items = np.array(["c", "a", "e", "b", "d"])
    ds = D.preprocess_interactions(
        users, items, np.full(5, 5.0), np.arange(5)[::-1].copy(), D.Preprocess(user_k=1, item_k=1, order="item_id"), "t"
    )
    assert ds.sequences[0].tolist() == [1, 2, 3, 4, 5]
    ds = D.preprocess_interactions(
        users, items, np.full(5, 5.0), np.arange(5)[::-1].copy(), D.Preprocess(user_k=1, item_k=1), "t"
    )
    assert ds.sequences[0].tolist() == [4, 2, 5, 1, 3]  # d, b, e, a, c: oldest first


def test_ties_keep_file_order_and_repeats_keep_earliest():
    users = np.array(["u"] * 4)
    items = np.array(["b", "a", "b", "c"])
    times = np.array([2, 2, 1, 3])
    ds = D.preprocess_interactions(users, items, np.full(4, 5.0), times, D.Preprocess(user_k=1, item_k=1), "t")
    # b at t=1 first (the earlier b), then a at t=2, then c; the later b is dropped
    assert ds.sequences[0].tolist() == [2, 1, 3]


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(D.DataError, match="Known datasets: .*beauty.*games"):
        D.load_dataset("beuaty")


def test_malformed_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n2 4 x\n")
    with pytest.raises(D.DataError, match=r"bad.txt:2"):
        D.load_dataset(str(bad))
    csvf = tmp_path / "bad.csv"
    csvf.write_text("A,u1,5.0,100\nB,u2,5.0\n")
    with pytest.raises(D.DataError, match=r"bad.csv:2: expected 4"):
        D.load_dataset(str(csvf))


def test_missing_file_without_network_says_where_to_put_it(tmp_path, monkeypatch):
    def no_network(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(D, "_download", no_network)
    with pytest.raises(D.DataError, match="SLMREC_DATA_DIR"):
        D.load_dataset("beauty", data_dir=tmp_path)
    with pytest.raises(D.DataError, match="no public direct download"):
        D.load_dataset("games", data_dir=tmp_path)


def test_checksum_mismatch_is_an_error(tmp_path):
    f = tmp_path / "amazon2014" / "Beauty.txt"
    f.parent.mkdir()
    f.write_text("1 1 2 3\n")
    with pytest.raises(D.DataError, match="sha256"):
        D.load_dataset("beauty", data_dir=tmp_path)


def test_leave_one_out_and_train_examples():
    ds = D.SequenceData("t", [np.array([1, 2, 3, 4, 5]), np.array([6, 7, 8])], 8)
    sp = D.leave_one_out(ds)
    assert [s.tolist() for s in sp.train] == [[1, 2, 3], [6]]
    inp, tgt = sp.stage("test")
    assert inp[0].tolist() == [1, 2, 3, 4] and tgt.tolist() == [5, 8]
    inp, tgt = sp.stage("valid")
    assert inp[1].tolist() == [6] and tgt.tolist() == [4, 7]
    ex = D.train_examples(sp, 4, "all")  # user 2 has one training item: no target, left out
    assert ex["input"].tolist() == [[0, 0, 1, 2]] and ex["target"].tolist() == [[0, 0, 2, 3]]
    ex = D.train_examples(sp, 4, "last")
    assert ex["input"].tolist() == [[0, 0, 1, 2]] and ex["target"].tolist() == [[0, 0, 0, 3]]
    ex = D.train_examples(sp, 2, "prefixes")
    assert ex["input"].tolist() == [[0, 1], [1, 2]] and ex["target"][:, -1].tolist() == [2, 3]
    with pytest.raises(D.DataError, match="fewer than 3"):
        D.leave_one_out(D.SequenceData("t", [np.array([1, 2])], 2))


def test_synthetic_is_seeded():
    a, b, c = D.synthetic(seed=1), D.synthetic(seed=1), D.synthetic(seed=2)
    assert all((x == y).all() for x, y in zip(a.sequences, b.sequences))
    assert any(len(x) != len(y) or (x != y).any() for x, y in zip(a.sequences, c.sequences))
    assert all(len(set(s.tolist())) == len(s) for s in a.sequences)


def test_dataset_stats():
    ds = D.SequenceData("t", [np.array([1, 2, 3]), np.array([1, 2, 3, 4, 5])], 5)
    st = D.dataset_stats(ds)
    assert st["users"] == 2 and st["interactions"] == 8 and st["density_pct"] == pytest.approx(80.0)


def test_data_needs_nothing_from_evaluation():
    """data imports no part of the evaluator, not even lazily: a Split draws its negatives in data."""
    import subprocess
    import sys

    code = (
        "import sys; from slmrec_lib import data as D; "
        "sp = D.leave_one_out(D.synthetic(n_users=20, n_items=40)); neg = sp.negatives(5, 0); "
        "assert neg.shape == (20, 5), neg.shape; "
        "print(sorted(m for m in sys.modules if m.startswith('slmrec_lib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "slmrec_lib.evaluation" not in out and "slmrec_lib.data" in out
    from slmrec_lib import evaluation

    assert evaluation.sample_negatives is D.sample_negatives  # the evaluator's name keeps working


# ------------------------------------------------------------------------------- dataset fingerprints
@pytest.fixture
def counted_hashing(tmp_path, monkeypatch):
    """A private digest cache and a counter of the files actually read and hashed."""
    monkeypatch.setenv("SLMREC_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = D.sha256_file

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(D, "sha256_file", counting)
    return calls


def test_fingerprint_of_a_file_changes_with_its_content_and_is_hashed_once(tmp_path, counted_hashing):
    import hashlib
    import os

    f = tmp_path / "seqs.txt"
    f.write_text("1 1 2 3\n2 2 3 4\n")
    first = D.fingerprint(str(f))
    assert first == hashlib.sha256(f.read_bytes()).hexdigest()
    assert D.fingerprint(str(f)) == first and len(counted_hashing) == 1  # unchanged: not read again
    f.write_text("1 1 2 3\n2 2 3 5\n")  # same size, new content
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = D.fingerprint(str(f))
    assert second != first and second == hashlib.sha256(f.read_bytes()).hexdigest()
    assert len(counted_hashing) == 2
    with f.open("a") as fh:
        fh.write("3 3 4 5\n")
    assert D.fingerprint(str(f)) not in (first, second)


def test_fingerprint_of_named_datasets(real_data_dir, counted_hashing):
    published = D.DATASETS["beauty"].sha256[0]
    assert D.fingerprint("beauty", data_dir=real_data_dir, download=False) == published
    D.fingerprint("beauty", data_dir=real_data_dir, download=False)
    assert len(counted_hashing) == 1  # fetch checked the file once; the second call used the cache
    games = D.fingerprint("games", data_dir=real_data_dir, download=False)
    parts = [D.file_sha256(real_data_dir / rel) for rel in D.DATASETS["games"].files]
    assert len(games) == 64 and games not in parts and len(set(parts)) == 2


def test_fingerprint_of_synthetic_follows_its_arguments(counted_hashing):
    base = D.fingerprint("synthetic")
    assert base == D.fingerprint("synthetic", synthetic_args={"seed": 0, "n_users": 300})  # defaults spelt out
    assert base != D.fingerprint("synthetic", synthetic_args={"seed": 1})
    assert counted_hashing == []
    with pytest.raises(TypeError):
        D.fingerprint("synthetic", synthetic_args={"n_user": 3})


# ------------------------------------------------------------------------------- up-front checks
def test_check_dataset_names_what_is_wrong(tmp_path):
    D.check_dataset("synthetic")
    with pytest.raises(D.DataError, match="unknown dataset 'beuaty'. Known datasets: .*beauty"):
        D.check_dataset("beuaty")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("1 1 2 3\n")
    for call in (D.check_dataset, D.load_dataset, D.fingerprint):
        with pytest.raises(D.DataError, match=r"is a directory, not a dataset file.*x\.txt"):
            call(str(tmp_path))
    with pytest.raises(D.DataError, match="no file at .*nothere.txt"):
        D.check_dataset(str(tmp_path / "nothere.txt"))
    (tmp_path / "a.tsv").write_text("x")
    with pytest.raises(D.DataError, match="unknown file type '.tsv'"):
        D.check_dataset(str(tmp_path / "a.tsv"))
    with pytest.raises(D.DataError, match="downloads are off.*SLMREC_DATA_DIR"):
        D.check_dataset("beauty", data_dir=tmp_path, download=False)
    (tmp_path / "bad.txt").write_text("1 1 2\n2 x 3\n")
    with pytest.raises(D.DataError, match=r"bad.txt:2"):
        D.check_dataset(str(tmp_path / "bad.txt"))


def test_check_dataset_accepts_the_real_files(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMREC_CACHE_DIR", str(tmp_path / "cache"))
    D.check_dataset("games", data_dir=real_data_dir, download=False)
    D.check_dataset(str(_cds_sample(real_data_dir)))
    D.check_dataset(str(real_data_dir / "amazon2014" / "Beauty.txt"))


# ------------------------------------------------------------------------------- ratings layout
def _rewrite_columns(src, dest, order):
    rows = [line.split(",") for line in src.read_text().splitlines()]
    dest.write_text("".join(",".join(r[i] for i in order) + "\n" for r in rows))
    return dest


def test_ratings_layout_reads_the_real_sample(real_data_dir):
    users, items, ratings, times = D.read_ratings_csv(_cds_sample(real_data_dir), amazon=True)
    assert len(users) == 25694 and items[0] == "B000002MHJ" and users[0] == "A1KXYKB3DGEEAA"
    assert ratings.min() >= 1 and times.min() >= 1443657600


def test_ratings_layout_names_the_swapped_columns(real_data_dir, tmp_path):
    src = _cds_sample(real_data_dir)
    swapped = _rewrite_columns(src, tmp_path / "user_item.csv", [1, 0, 2, 3])
    with pytest.raises(D.DataError, match=r"column 1 \(item\) should hold ASINs.*item and user look swapped"):
        D.load_dataset(str(swapped), preprocess=D.Preprocess(user_k=3, item_k=3))
    swapped = _rewrite_columns(src, tmp_path / "rating_time.csv", [0, 1, 3, 2])
    with pytest.raises(D.DataError, match=r"rating_time.csv:1: column 3 \(rating\).*rating and timestamp look swapped"):
        D.load_dataset(str(swapped), preprocess=D.Preprocess(user_k=3, item_k=3))


def test_ratings_layout_other_wrong_columns(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
        return path

    ok = [(f"B00000{i:04d}", f"A{i % 7:013d}", 5.0, 1443657600 + i) for i in range(40)]
    D.read_ratings_csv(write("ok.csv", ok), amazon=True)
    ms = [(i, u, r, t * 1000) for i, u, r, t in ok]
    assert D.read_ratings_csv(write("ms.csv", ms))[3].tolist() == [t for *_, t in ok]  # milliseconds accepted
    with pytest.raises(D.DataError, match=r"old.csv:3: column 4 \(timestamp\) holds 12345"):
        D.read_ratings_csv(write("old.csv", ok[:2] + [(ok[2][0], ok[2][1], 5.0, 12345)] + ok[3:]))
    with pytest.raises(D.DataError, match=r"column 3 \(rating\): only 0% of ratings are whole or half"):
        D.read_ratings_csv(write("frac.csv", [(i, u, 3.1415, t) for i, u, _, t in ok]))
    with pytest.raises(D.DataError, match=r"also occur in column 1 \(item\)"):
        D.read_ratings_csv(write("same.csv", [(i, i, r, t) for i, _, r, t in ok]))
    generic = [(f"i{n % 9}", f"u{n}", 4.0, 1443657600) for n in range(30)]
    D.read_ratings_csv(write("generic.csv", generic))  # not Amazon's ids: no ASIN check
    with pytest.raises(D.DataError, match="should hold ASINs"):
        D.read_ratings_csv(write("generic.csv", generic), amazon=True)
    with pytest.raises(D.DataError, match="must have no header"):
        D.read_ratings_csv(write("header.csv", [("item", "user", "rating", "timestamp")] + ok))


# ------------------------------------------------------------------------------- truncation
def test_truncation_summary_by_hand():
    # training parts: [1..7] (6 targets), [8, 9] (1 target), [10] (none)
    ds = D.SequenceData("t", [np.arange(1, 10), np.array([8, 9, 2, 3]), np.array([10, 4, 5])], 10)
    sp = D.leave_one_out(ds)
    s = D.truncation_summary(sp, 4, "all")
    assert (s["rows"], s["targets_used"], s["targets_cut"], s["rows_cut"], s["items_cut"]) == (2, 5, 2, 1, 2)
    assert (s["users_without_target"], s["valid_cut"], s["test_cut"]) == (1, 1, 1)
    s = D.truncation_summary(sp, 4, "last")
    assert (s["rows"], s["targets_used"], s["targets_cut"], s["rows_cut"], s["items_cut"]) == (2, 2, 0, 1, 2)
    s = D.truncation_summary(sp, 4, "prefixes")  # prefixes of length 5 and 6 lose 1 and 2 items
    assert (s["rows"], s["targets_used"], s["targets_cut"], s["rows_cut"], s["items_cut"]) == (7, 7, 0, 2, 3)
    assert "5 targets used, 2 cut" in D.truncation_line(D.truncation_summary(sp, 4, "all"))
    with pytest.raises(ValueError, match="unknown targets"):
        D.truncation_summary(sp, 4, "every")


@pytest.mark.parametrize("targets", ["all", "last", "prefixes"])
def test_truncation_summary_matches_train_examples(targets):
    sp = D.leave_one_out(D.synthetic(n_users=60, n_items=80, seed=3, max_len=30))
    for max_len in (5, 12, 40):
        ex = D.train_examples(sp, max_len, targets)
        s = D.truncation_summary(sp, max_len, targets)
        assert s["rows"] == len(ex["input"]) and s["targets_used"] == int((ex["target"] > 0).sum())
        full = sum(len(t) - 1 for t in sp.train if len(t) >= 2)
        assert s["targets_used"] + s["targets_cut"] == (full if targets == "all" else s["targets_used"])
        inputs = {"all": [t[:-1] for t in sp.train if len(t) >= 2], "last": [t[:-1] for t in sp.train if len(t) >= 2],
                  "prefixes": [t[:j] for t in sp.train for j in range(1, len(t))]}[targets]
        assert s["items_cut"] == sum(len(x) for x in inputs) - int((ex["input"] > 0).sum())
    assert D.truncation_summary(sp, 40, targets)["targets_cut"] == 0


# ------------------------------------------------------------------------------- shuffled histories
def test_shuffled_eval_inputs_keep_items_and_padding_and_are_seeded():
    sp = D.leave_one_out(D.synthetic(n_users=40, n_items=60, seed=0))
    plain, tgt, hist = D.eval_inputs(sp, "test", 10)
    a, tgt_a, hist_a = D.eval_inputs(sp, "test", 10, shuffle_seed=0)
    b, _, _ = D.eval_inputs(sp, "test", 10, shuffle_seed=0)
    c, _, _ = D.eval_inputs(sp, "test", 10, shuffle_seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, plain)
    assert torch.equal(tgt, tgt_a) and all((x == y).all() for x, y in zip(hist, hist_a))
    for p, s in zip(plain, a):
        assert sorted(p.tolist()) == sorted(s.tolist())  # the same items
        assert ((p == 0) == (s == 0)).all()  # padding where it was, on the left
    changed = sum(not torch.equal(p, s) for p, s in zip(plain, a))
    assert changed > 30  # most orders change (a 5-item history keeps its order with probability 1/120)
    # a user's order does not depend on which other users are in the batch
    sub = D.shuffle_inputs(plain[[7, 3]], np.array([7, 3]), 0)
    assert torch.equal(sub, a[[7, 3]])


def test_subset_users_is_seeded_and_keeps_items():
    ds = D.synthetic(n_users=50, n_items=40, seed=0)
    sub = D.subset_users(ds, 10, seed=4)
    keep = np.sort(np.random.default_rng(4).choice(50, 10, replace=False))  # the draw committed runs used
    assert sub.n_users == 10 and sub.n_items == 40 and sub.info["subset_seed"] == 4
    assert all((x == ds.sequences[u]).all() for x, u in zip(sub.sequences, keep))
    assert D.subset_users(ds, None, 0) is ds and D.subset_users(ds, 50, 0) is ds
