"""res.matches equals the sklearn reference's nonzero (train, benchmark,
score) triples exactly: on generated Unicode corpora and on every real prompt
set of ../shared/data."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prefcurate
from reference import python_flagged, sklearn_triples, triples

# a small vocabulary so that n-grams repeat across and within documents;
# words of many scripts, case-expanding and final-sigma letters, digits,
# underscores, and words that lower-case into two tokens
VOCAB = [
    "the",
    "The",
    "THE",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "I",
    "x1",
    "foo_bar",
    "_",
    "__",
    "İstanbul",
    "ΣΟΦΙΑΣ",
    "σοφίας",
    "Straße",
    "STRASSE",
    "café",
    "cafe\u0301",
    "ﬁne",
    "中文",
    "日本語",
    "नमस्ते",
    "١٢٣",
    "٣",
    "Ⅻ",
    "½",
    "ǅungla",
    "ΑΣ",
    "Σ",
]
SEPS = [" ", "  ", "\n", "\t", ", ", ". ", "-", "'", "\u00a0", "\u2028", " \u0301 ", "!?", "\u200d"]


@st.composite
def doc(draw, max_words=40):
    n = draw(st.integers(0, max_words))
    parts = []
    for _ in range(n):
        parts.append(draw(st.sampled_from(VOCAB)))
        parts.append(draw(st.sampled_from(SEPS)))
    return "".join(parts)


@st.composite
def corpus(draw):
    bench = draw(st.lists(doc(), min_size=1, max_size=6))
    train = draw(st.lists(doc(), min_size=0, max_size=6))
    # plant copies and pieces of benchmark text, repeated, to force matches
    for _ in range(draw(st.integers(0, 4))):
        b = draw(st.sampled_from(bench))
        k = draw(st.integers(0, len(b)))
        piece = b[k : k + draw(st.integers(0, 200))]
        reps = draw(st.integers(1, 3))
        train.append(draw(doc(10)) + " " + " ".join([piece] * reps) + " " + draw(doc(10)))
    return bench, train


@given(corpus(), st.sampled_from([(7, 13), (1, 1), (2, 4), (3, 3), (5, 9)]))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_equal_sklearn(data, ngram_range):
    bench, train = data
    res = prefcurate.decontaminate(train, bench, ngram_range=ngram_range)
    want = sklearn_triples(bench, train, ngram_range)
    assert triples(res) == want
    flagged = sorted({t for t, _, _ in want})
    assert np.flatnonzero(res.contaminated).tolist() == flagged


@given(corpus())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_same_result_for_any_thread_count(data):
    bench, train = data
    train = train * 50  # several parallel chunks
    one = prefcurate.decontaminate(train, bench, num_threads=1)
    two = prefcurate.decontaminate(train, bench, num_threads=2)
    four = prefcurate.decontaminate(train, bench, num_threads=4)
    assert one.matches.equals(two.matches) and one.matches.equals(four.matches)
    assert one.attribution.equals(two.attribution) and one.attribution.equals(four.attribution)


def _real_sets(shared):
    """Every real prompt set of ../shared/data: name -> list of prompts."""
    d = shared
    sets = {}
    sets["skywork_v0.2_prompts"] = [
        json.loads(x)["query"] for x in open(d / "pairs/skywork_v0.2_prompt_sample.jsonl")
    ]
    sets["skywork_v0.2_chosen"] = [
        json.loads(x)["chosen_response"] for x in open(d / "pairs/skywork_v0.2_prompt_sample.jsonl")
    ]
    ob = json.load(open(d / "pairs/offsetbias_evalbiasbench.json"))
    sets["offsetbias_evalbiasbench"] = [r["instruction"] for v in ob.values() for r in v]
    sets["wildguardmix_prompts"] = [
        r["text"] for r in json.load(open(d / "prompts/wildguardmix_prompts.json"))
    ]
    sets["stack_exchange_questions"] = [
        r["question"] for r in json.load(open(d / "pairs/stack_exchange_paired_tiny.json"))
    ]
    mg = json.load(open(d / "pairs/magpie_examples_5res_armorm.json"))
    sets["magpie_instructions"] = [r["instruction"] for r in mg]
    sets["magpie_responses"] = [x for r in mg for x in r["responses"]]
    rb = [json.loads(x) for x in open(d / "benchmark/rewardbench_reconstructed.jsonl")]
    sets["benchmark_itself"] = [r["prompt"] for r in rb]
    sets["benchmark_chosen"] = [r["chosen"] for r in rb if r["chosen"] is not None]
    return sets


def test_real_prompt_sets_equal_sklearn(shared, benchmark_path):
    bench = [json.loads(x)["prompt"] for x in open(benchmark_path)]
    index = prefcurate.BenchmarkIndex(benchmark_path)
    for name, train in _real_sets(shared).items():
        res = prefcurate.decontaminate(train, index)
        want = sklearn_triples(bench, train)
        assert triples(res) == want, name
        # and the contaminated set equals the pure-Python 7-gram approach
        assert (res.contaminated == python_flagged(bench, train)).all(), name


def test_real_data_has_matches(shared, benchmark_path):
    """Guard against a vacuous exactness test: the real sets do overlap."""
    index = prefcurate.BenchmarkIndex(benchmark_path)
    sets = _real_sets(shared)
    assert prefcurate.decontaminate(sets["offsetbias_evalbiasbench"], index).n_removed == 40
    assert prefcurate.decontaminate(sets["skywork_v0.2_prompts"], index).n_removed == 8
    itself = sets["benchmark_itself"]
    long_enough = sum(len(prefcurate.tokenize(p)) >= 7 for p in itself)
    assert prefcurate.decontaminate(itself, index).n_removed == long_enough


def test_precise_method_on_real_data(shared, benchmark_path):
    """Where the reference flags shared templates (asymptote boilerplate in
    Skywork's math prompts, "it would be great if you could" in WildGuardMix),
    the precise method does not; it still flags EvalBiasBench's copies of
    LLMBar prompts, including short ones the reference cannot see."""
    sets = _real_sets(shared)
    ref = prefcurate.BenchmarkIndex(benchmark_path)
    pre = prefcurate.BenchmarkIndex(benchmark_path, method="precise")

    sky_ref = prefcurate.decontaminate(sets["skywork_v0.2_prompts"], ref)
    sky_pre = prefcurate.decontaminate(sets["skywork_v0.2_prompts"], pre, method="precise")
    assert sky_ref.n_removed == 8 and sky_pre.n_removed == 0
    spans = sky_ref.attribution.column("matched_span").to_pylist()
    assert any("[asy" in s for s in spans) and any("label(" in s for s in spans)

    wg_ref = prefcurate.decontaminate(sets["wildguardmix_prompts"], ref)
    wg_pre = prefcurate.decontaminate(sets["wildguardmix_prompts"], pre, method="precise")
    assert wg_ref.n_removed == 3 and wg_pre.n_removed == 0
    assert {s.lower() for s in wg_ref.attribution.column("matched_span").to_pylist()} == {
        "it would be helpful if you could",
        "it would be great if you could",
    }

    ob = sets["offsetbias_evalbiasbench"]
    ob_ref = prefcurate.decontaminate(ob, ref)
    ob_pre = prefcurate.decontaminate(ob, pre, method="precise")
    both = ob_ref.contaminated & ob_pre.contaminated
    assert both.sum() == 33
    short = [ob[i] for i in np.flatnonzero(ob_pre.contaminated & ~ob_ref.contaminated)]
    assert "Name five benefits of exercising daily." in short
    assert all(len(prefcurate.tokenize(s)) < 7 for s in short)  # under the reference's 7-gram floor
