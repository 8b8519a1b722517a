"""The OCR benchmark's instrument: decoding, scoring, batching and inputs (bench/ocr.py; no training here)."""

from __future__ import annotations

import importlib.util
import itertools
import json

import numpy as np
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_ocr", ROOT / "bench" / "ocr.py")
ocr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ocr)


def one_hot_logits(path: list[int]) -> np.ndarray:
    logits = np.zeros((1, len(path), ocr.BLANK + 1), np.float32)
    logits[0, np.arange(len(path)), path] = 1.0
    return logits


@pytest.mark.parametrize(
    "path, text",
    [([1, 1, 10, 1, 2, 2], "112"), ([10, 10, 10], ""), ([0, 10, 0, 0, 10, 10, 9], "009"), ([7], "7")],
)
def test_greedy_decode_merges_repeats_and_drops_blanks(path, text):
    assert ocr.greedy_decode(one_hot_logits(path)) == [text]


def levenshtein_by_search(a: str, b: str) -> int:
    """An independent reference: the fewest single-character edits, found by breadth-first search."""
    frontier, seen, steps = {a}, {a}, 0
    alphabet = set(a + b)
    while b not in frontier:
        steps += 1
        nxt = set()
        for s in frontier:
            for i in range(len(s) + 1):
                nxt.add(s[:i] + s[i + 1 :])
                for c in alphabet:
                    nxt.add(s[:i] + c + s[i:])
                    nxt.add(s[:i] + c + s[i + 1 :])
        frontier = nxt - seen
        seen |= nxt
    return steps


def test_edit_distance_matches_an_exhaustive_search():
    words = ["", "1", "12", "21", "123", "1123", "3321", "909"]
    for a, b in itertools.product(words, repeat=2):
        assert ocr.edit_distance(a, b) == levenshtein_by_search(a, b), (a, b)


def test_epoch_batches_are_full_single_width_and_never_repeat():
    rng = np.random.default_rng(0)
    widths = rng.integers(10, 200, 3000)
    batches = ocr.epoch_batches(widths, np.random.default_rng(1))
    seen = np.concatenate([idx for _, idx in batches])
    assert len(seen) == len(set(seen.tolist()))  # each input at most once per epoch
    classes = ocr.bucket_width(widths)
    expected = sum(np.sum(classes == c) // ocr.BATCH for c in np.unique(classes))
    assert len(batches) == expected  # only each class's last partial batch is left out
    for width, idx in batches:
        assert len(idx) == ocr.BATCH and width % ocr.BUCKET == 0
        assert np.all(classes[idx] == width) and np.all(widths[idx] <= width) and np.all(widths[idx] > width - ocr.BUCKET)
    again = ocr.epoch_batches(widths, np.random.default_rng(1))
    assert all(w1 == w2 and np.array_equal(a, b) for (w1, a), (w2, b) in zip(batches, again))


def test_to_input_scales_to_the_input_height_and_normalises_contrast():
    image = np.full((48, 96), 0.2, np.float32)  # grey paper
    image[10:38, 20:30] = 0.8  # a faint stroke
    x = ocr.to_input(image)
    assert x.shape == (ocr.INPUT_HEIGHT, 2 * ocr.INPUT_HEIGHT)
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)  # paper to 0, ink to 1
    assert np.mean(x == 0.0) > 0.8  # most of the line stays paper
    too_wide = ocr.to_input(np.zeros((10, 10 * ocr.MAX_WIDTH), np.float32))
    assert too_wide.shape == (ocr.INPUT_HEIGHT, ocr.MAX_WIDTH) and not too_wide.any()  # blank: never stretched into noise


def test_pad_batch_pads_with_paper_on_the_right():
    a, b = np.ones((ocr.INPUT_HEIGHT, 5), np.float32), np.full((ocr.INPUT_HEIGHT, 9), 0.5, np.float32)
    batch = ocr.pad_batch([a, b], 16)
    assert batch.shape == (2, ocr.INPUT_HEIGHT, 16, 1)
    assert np.all(batch[0, :, :5] == 1) and not batch[0, :, 5:].any()
    assert np.all(batch[1, :, :9] == 0.5) and not batch[1, :, 9:].any()


def test_table_reports_each_rows_mean_over_its_seeds():
    runs = [{"separated": (0.90, 0.02), "touching": (0.80, 0.05)}, {"separated": (0.94, 0.01), "touching": (0.84, 0.04)}]
    lines = ocr.table([("realistic", runs), ("default", runs[:1] * 2)])
    assert len(lines) == 4 and lines[1].count("|---") == 6
    assert lines[2] == "| realistic (`--realistic`) | 92.0% | 1.50% | 82.0% | 4.50% | 90.0% / 80.0%, 94.0% / 84.0% |"
    assert lines[3].startswith("| default (no flags) | 90.0% | 2.00% | 80.0% | 5.00% |")
    single = ocr.table([("realistic", runs[1:])])
    assert single[2] == "| realistic (`--realistic`) | 94.0% | 1.00% | 84.0% | 4.00% |" and single[1].count("|---") == 5


def test_edits_are_a_fewest_edits_alignment():
    words = ["", "1", "11", "41", "141", "4", "123", "1123", "3321", "909", "7777"]
    for text, read in itertools.product(words, repeat=2):
        ops = ocr.edits(text, read)
        assert len(ops) == levenshtein_by_search(text, read), (text, read)
        kinds = [kind for kind, _, _ in ops]
        # what is not inserted is read from the text: each dropped digit shortens the read, each inserted one lengthens it
        assert len(read) - len(text) == kinds.count("ins") - kinds.count("del"), (text, read)
        for kind, true, got in ops:
            assert (kind == "sub") == (true != "" and got != "" and true != got)
            assert true in text and got in read


def test_error_kinds_count_what_a_reader_sees():
    texts = ["123", "45", "7", "4", "900"]
    reads = ["1123", "4", "8", "41", "900"]
    kinds = ocr.error_kinds(texts, reads)
    assert kinds == {"too long": 2, "too short": 1, "inserted": 2, "inserted 1s": 2, "dropped": 1, "dropped 1s": 0,
                     "substituted": 1, "digits": 10}
    assert ocr.error_kinds(["61"], ["6"])["dropped 1s"] == 1 and ocr.error_kinds(["61"], ["67"])["substituted"] == 1


def test_errors_table_gives_each_rows_mean_over_its_seeds():
    def run(sub, ins):
        kinds = {"too long": ins, "too short": 0, "inserted": ins, "inserted 1s": 1, "dropped": 2, "dropped 1s": 2,
                 "substituted": sub, "digits": 1000}
        return {"separated errors": kinds, "touching errors": {**kinds, "substituted": 2 * sub}}

    lines = ocr.errors_table([("realistic", [run(10, 4), run(20, 6)])])
    assert len(lines) == 4 and lines[1].count("|---") == 7
    assert lines[2] == "| realistic | separated | 5 | 0 | 5 (1) | 2 (2) | 15 (1.50%) |"
    assert lines[3] == "| realistic | touching | 5 | 0 | 5 (1) | 2 (2) | 30 (3.00%) |"


def test_filters_option_sets_the_recognizers_width_and_is_bounded(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ocr, "FILTERS", ocr.FILTERS)  # restored after the test
    monkeypatch.setattr(ocr, "INPUT_HEIGHT", ocr.INPUT_HEIGHT)
    monkeypatch.setattr(ocr, "MAX_WIDTH", ocr.MAX_WIDTH)
    monkeypatch.setattr(ocr, "SHARED_MNIST", tmp_path / "absent")  # main stops after reading its options
    assert ocr.main(["--filters", "24", "48", "72", "96"]) == 2
    assert ocr.FILTERS == (24, 48, 72, 96)
    for bad in (["0", "1", "1", "1"], ["1", "1", "1", str(ocr.MAX_FILTERS + 1)], ["1", "2", "3"]):
        with pytest.raises(SystemExit) as exit_:
            ocr.main(["--filters", *bad])
        assert exit_.value.code == 2
        assert "--filters" in capsys.readouterr().err.splitlines()[-1]


def test_convs_option_sets_the_recognizers_depth_and_is_bounded(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ocr, "CONVS", ocr.CONVS)  # restored after the test
    monkeypatch.setattr(ocr, "FILTERS", ocr.FILTERS)
    monkeypatch.setattr(ocr, "INPUT_HEIGHT", ocr.INPUT_HEIGHT)
    monkeypatch.setattr(ocr, "MAX_WIDTH", ocr.MAX_WIDTH)
    monkeypatch.setattr(ocr, "SHARED_MNIST", tmp_path / "absent")  # main stops after reading its options
    assert ocr.main(["--convs", "1", "2", "2", "2"]) == 2
    assert ocr.CONVS == (1, 2, 2, 2)
    for bad in (["0", "1", "1", "1"], ["1", "1", "1", str(ocr.MAX_CONVS + 1)], ["2", "2"]):
        with pytest.raises(SystemExit) as exit_:
            ocr.main(["--convs", *bad])
        assert exit_.value.code == 2
        assert "--convs" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("option, value", [("--train", "2999"), ("--train", "2e4"), ("--test", "0"), ("--epochs", "0"),
                                           ("--epochs", "1001"), ("--seeds", "11"), ("--seed", "-1"), ("--input-height", "7"),
                                           ("--input-height", "65")])
def test_every_size_option_is_bounded_with_one_line(option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        ocr.main([option, value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert option in last and value in last


def test_the_recognizer_has_the_asked_convolutions_and_a_ctc_column_per_two_pixels(monkeypatch):
    pytest.importorskip("keras")
    monkeypatch.setattr(ocr, "FILTERS", (4, 5, 6, 7))
    monkeypatch.setattr(ocr, "CONVS", (1, 3, 2, 1))
    model = ocr.build_model(0)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [layer.name for layer in convs] == ["stage0_conv0", "stage1_conv0", "stage1_conv1", "stage1_conv2",
                                                "stage2_conv0", "stage2_conv1", "stage3_conv0"]
    assert [layer.filters for layer in convs] == [4, 5, 5, 5, 6, 6, 7]
    logits = model.predict(np.zeros((2, ocr.INPUT_HEIGHT, 48, 1), np.float32), verbose=0)
    assert logits.shape == (2, 24, ocr.BLANK + 1)


def test_shift_rows_moves_ink_and_fills_with_paper():
    batch = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3, 1) + 1
    down, up = ocr.shift_rows(batch, 1), ocr.shift_rows(batch, -2)
    assert np.array_equal(down[:, 1:], batch[:, :3]) and not down[:, 0].any()
    assert np.array_equal(up[:, :2], batch[:, 2:]) and not up[:, 2:].any()
    assert np.array_equal(ocr.shift_rows(batch, 0), batch)


class ReadsByInkRow:
    """A stand-in recognizer: reads "7" where an input's first ink row is `row`, else "12"."""

    def __init__(self, row):
        self.row, self.seen = row, []

    def predict(self, batch, batch_size, verbose):
        self.seen.append(batch)
        out = []
        for image in batch:
            top = np.flatnonzero(image.max(axis=(1, 2)) > 0)[0]
            path = [7, ocr.BLANK, ocr.BLANK] if top == self.row else [1, ocr.BLANK, 2]
            out.append(one_hot_logits(path + [ocr.BLANK] * (batch.shape[2] // 2 - 3))[0] * 5)
        return np.stack(out)


def test_test_time_shifts_average_the_reads_of_shifted_inputs():
    x = np.zeros((ocr.INPUT_HEIGHT, 40), np.float32)
    x[5:15, 10:20] = 1
    model = ReadsByInkRow(row=5)  # the input as it is reads "7", shifted a row up or down "12"
    assert ocr.read_numbers(model, [x]) == ["7"] and len(model.seen) == 1
    model = ReadsByInkRow(row=5)
    assert ocr.read_numbers(model, [x], shifts=(-1, 0, 1)) == ["12"]  # two reads of three
    assert [int(np.flatnonzero(b[0].max(axis=(1, 2)))[0]) for b in model.seen] == [4, 5, 6]
    assert ocr.read_numbers(ReadsByInkRow(row=6), [x], shifts=(-1, 0, 1)) == ["12"]
    assert ocr.read_numbers(ReadsByInkRow(row=6), [x], shifts=(0, 1, 1)) == ["7"]


def test_tta_reads_each_number_as_it_is_a_row_higher_and_a_row_lower():
    x = np.zeros((ocr.INPUT_HEIGHT, 40), np.float32)
    x[5:15, 10:20] = 1
    model = ReadsByInkRow(row=5)
    ocr.read_numbers(model, [x], shifts=ocr.TTA_SHIFTS)
    assert sorted(int(np.flatnonzero(b[0].max(axis=(1, 2)))[0]) for b in model.seen) == [4, 5, 6]


def test_softmax_matches_scipy():
    from scipy.special import softmax

    logits = np.random.default_rng(0).normal(0, 30, (2, 7, ocr.BLANK + 1))
    np.testing.assert_allclose(ocr.softmax(logits), softmax(logits, axis=-1), rtol=1e-10, atol=1e-300)


def test_run_row_reports_and_writes_what_the_recognizer_read(monkeypatch, tmp_path):
    calls = []

    class ReadsTwelve:  # a stand-in recognizer: every input reads "12"
        def predict(self, batch, batch_size, verbose):
            calls.append(len(batch))
            path = [1, ocr.BLANK, 2] + [ocr.BLANK] * (batch.shape[2] // 2 - 3)
            return np.repeat(one_hot_logits(path), len(batch), axis=0)

    monkeypatch.setattr(ocr, "train", lambda x, texts, epochs, seed: ReadsTwelve())
    monkeypatch.setattr(ocr, "CONFIGS", {"realistic": ["--realistic", "--length", "2", "2"]})
    tests = {"separated": ([np.zeros((ocr.INPUT_HEIGHT, 40), np.float32)] * 3, ["12", "125", "7"])}

    class Args:
        train, epochs, keep, reads, tta = 4, 1, None, tmp_path / "reads", False

    Args.reads.mkdir()  # main makes it before the first training

    result = ocr.run_row("realistic", tmp_path / "work", tests, Args, seed=0)
    assert result["separated"] == (pytest.approx(1 / 3), pytest.approx(3 / 6))
    assert result["separated errors"]["too short"] == 1 and result["separated errors"]["too long"] == 1
    written = json.loads((tmp_path / "reads" / "realistic-seed0-separated.json").read_text())
    assert written == [["12", "12"], ["125", "12"], ["7", "12"]]
    assert not (tmp_path / "work" / "realistic-seed0").exists()  # the training images do not outlive the row
    Args.tta = True  # each width class read at every shift of TTA_SHIFTS
    before = len(calls)
    assert ocr.run_row("realistic", tmp_path / "work", tests, Args, seed=0)["separated"] == result["separated"]
    assert len(calls) - before == len(ocr.TTA_SHIFTS) * before


def test_an_unwritable_reads_folder_is_refused_before_any_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert ocr.main(["--reads", str(tmp_path / "file" / "reads")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ocr.py: --reads")
