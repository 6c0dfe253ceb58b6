"""Dataset files and the synthetic word problems."""

from __future__ import annotations

import json

import pytest

from cliffjax.data import load_records, split_records, word_problems, write_jsonl
from cliffjax.data.records import get_field
from cliffjax.data.word_problems import main as word_problems_main
from cliffjax.rewards import extract_gsm8k, get_verifier


def test_jsonl_and_parquet_round_trip(tmp_path):
    recs = [{"q": f"question {i}", "a": {"final": str(i)}} for i in range(5)]
    assert write_jsonl(tmp_path / "d.jsonl", recs) == 5
    assert load_records(tmp_path / "d.jsonl") == recs
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "d.parquet")
    assert load_records(tmp_path / "d.parquet") == recs
    assert get_field(recs[2], "a.final") == "2"


def test_bad_files_and_fields_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl does not exist"):
        load_records(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"q": 1}\n\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not valid JSON"):
        load_records(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"list\.jsonl:1: expected a JSON object"):
        load_records(tmp_path / "list.jsonl")
    with pytest.raises(KeyError, match=r"no field 'answer' \(fields: \['q'\]\)"):
        get_field({"q": 1}, "answer")


def test_split_is_deterministic_and_disjoint():
    recs = [{"i": i} for i in range(20)]
    train, evals = split_records(recs, 5, seed=1)
    assert len(train) == 15 and len(evals) == 5
    assert {r["i"] for r in train}.isdisjoint({r["i"] for r in evals})
    assert split_records(recs, 5, seed=1) == (train, evals)
    assert split_records(recs, 5, seed=2)[1] != evals
    with pytest.raises(ValueError, match="n_eval"):
        split_records(recs, 20)


def test_word_problems_are_gsm8k_formatted_and_correct(tmp_path):
    probs = word_problems(300, seed=0)
    assert len({p["question"] for p in probs}) == 300
    assert probs == word_problems(300, seed=0) and probs != word_problems(300, seed=1)
    check = get_verifier("gsm8k")
    for p in probs:
        final = extract_gsm8k(p["answer"], strict=True)
        assert final is not None and int(final) >= 0
        *_, last = p["answer"].split("\n")[-2].split(" = ")
        assert last == final  # the last step computes the answer
        assert check(f"... #### {final}", p["answer"], True) == 1.0
    word_problems_main([str(tmp_path / "w.jsonl"), "--n", "7"])
    lines = (tmp_path / "w.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == word_problems(7, 0)
