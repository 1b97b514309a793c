import numpy as np
import pandas as pd
import pytest

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
