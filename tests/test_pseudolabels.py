import numpy as np
import pyarrow as pa

from vat.data.manifest import Box
from vat.labels.pseudolabels import BOX_SCHEMA, Candidates, match_truth, merge


def _cands(boxes, scores, classes, source):
    n = len(scores)
    return Candidates(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
        np.arange(n * 3, dtype=np.float32).reshape(n, 3) + (100 if source == "restored" else 0),
        np.array([source] * n, dtype=object),
    )


def test_merge_keeps_the_more_confident_box_and_its_source():
    low = _cands([[0, 0, 10, 10], [50, 50, 60, 60]], [0.4, 0.9], [2, 1], "degraded")
    rest = _cands([[1, 1, 10, 10], [80, 80, 90, 90]], [0.7, 0.3], [2, 0], "restored")
    m = merge([low, rest], iou=0.5)
    assert m.scores.tolist() == [np.float32(0.9), np.float32(0.7), np.float32(0.3)]
    assert m.sources.tolist() == ["degraded", "restored", "restored"]
    # the overlapping pair kept the restored box (0.7 > 0.4), with its own feature vector
    assert m.boxes[1].tolist() == [1, 1, 10, 10] and m.features[1, 0] >= 100


def test_merge_is_class_wise_and_ties_go_to_the_first_part():
    low = _cands([[0, 0, 10, 10]], [0.5], [0], "degraded")
    same_place_other_class = _cands([[0, 0, 10, 10]], [0.9], [1], "restored")
    assert len(merge([low, same_place_other_class], 0.5).scores) == 2
    tie = _cands([[0, 0, 10, 10]], [0.5], [0], "restored")
    m = merge([low, tie], 0.5)
    assert m.sources.tolist() == ["degraded"]


def test_merge_of_nothing_is_empty():
    empty = _cands(np.zeros((0, 4)), [], [], "degraded")
    assert len(merge([empty, empty], 0.5).scores) == 0


def test_match_truth_is_greedy_by_score_and_class_aware():
    truth = [Box(0, 0, 0, 10, 10), Box(1, 20, 20, 30, 30)]
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    correct = match_truth(boxes, np.array([0, 0, 0, 1]), np.array([0.5, 0.9, 0.8, 0.7]), truth)
    # the 0.9 duplicate takes the first GT; the class-0 box on a class-1 GT is wrong; the last misses
    assert correct.tolist() == [False, True, False, False]


def test_box_schema_round_trips():
    row = {f.name: None for f in BOX_SCHEMA}
    row |= {"image_id": "a", "domain": "degraded", "source": "restored", "cls": 1, "kept": True}
    t = pa.Table.from_pylist([row], schema=BOX_SCHEMA)
    assert t.to_pylist()[0]["source"] == "restored" and t.schema == BOX_SCHEMA


def _rule_params(**kw):
    from vat.labels.rules import PseudolabelParams

    base = dict(pairing="disjoint", conf=0.25, nms_iou=0.7, merge_iou=0.5, k=2, bandwidth="median",
                metric="cosine", nuq_mode="classification", epsilon_quantile=0.8, epsilon_of="query",
                weight_range=(0.5, 1.0))  # fmt: skip
    return PseudolabelParams(**(base | kw))


def test_clean_labels_are_algorithm_1s_unless_filtered():
    from vat.labels.rules import clean_weights, weights

    u = np.array([0.1, 0.3, 0.5, 0.9], np.float32)
    kept, w = clean_weights(_rule_params(), u, 0.5)
    assert kept.all()  # Y_HQ: every box, the one above epsilon too, at the weight at epsilon
    np.testing.assert_allclose(w, [1.0, 0.75, 0.5, 0.5], rtol=1e-6)
    kept, w = clean_weights(_rule_params(clean_filter=True), u, 0.5)
    assert kept.tolist() == [True, True, True, False]  # the box at epsilon is kept, as Y_LQ's rule
    np.testing.assert_allclose(w, [1.0, 0.75, 0.5, 0.0], rtol=1e-6)
    # the degraded rule: kept exactly where u <= epsilon, and weight 0 exactly where not kept
    deg = weights(_rule_params(), u, 0.5, u <= 0.5)
    assert ((deg > 0) == (u <= 0.5)).all()


def test_quality_precision_top_reads_the_most_confident_boxes_as_many_as_true_ones():
    """Precision over all boxes falls with every low-confidence box added; the precision of the
    n most confident (n = true boxes) does not, and it falls when the confident ones are wrong."""
    from types import SimpleNamespace

    from vat.labels.rules import quality

    def rows(correct):
        scores = np.array([0.9, 0.8, 0.1, 0.05, 0.01])
        c = SimpleNamespace(scores=scores, sources=np.array(["restored"] * 5, dtype=object))
        u = {k: np.linspace(0, 1, 5) for k in ("epistemic", "aleatoric", "total")}
        return [(c, u, np.ones(5, bool), np.array(correct), 2, np.ones(5, bool))]

    good = quality(rows([True, True, False, False, False]))["after_filter"]
    assert good["precision"] == 0.4 and good["precision_top"] == 1.0 and good["recall"] == 1.0
    bad = quality(rows([False, False, False, True, True]))["after_filter"]
    assert bad["precision"] == 0.4 and bad["precision_top"] == 0.0
