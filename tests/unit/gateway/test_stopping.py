from hypothesis import given
from hypothesis import strategies as st

from gateway.generation.stopping import StopMatcher, find_stop


def test_find_stop_earliest() -> None:
    assert find_stop("abc END def STOP", ("STOP", "END")) == 4
    assert find_stop("nothing", ("STOP",)) is None


def test_matcher_holds_back_a_possible_prefix() -> None:
    m = StopMatcher(("END",))
    assert m.feed("hello E") == "hello"
    assert m.feed("N") == " "  # "EN" may still become END: only the space is certainly before it
    assert m.feed("D more") == ""
    assert m.stopped
    assert m.feed("anything") == ""
    assert m.flush() == ""


def test_matcher_releases_tail_when_no_stop_comes() -> None:
    m = StopMatcher(("END",))
    out = m.feed("abc E") + m.feed("x") + m.flush()
    assert out == "abc Ex"


@given(st.lists(st.text(alphabet="abE ND", max_size=5), max_size=12), st.sampled_from(["END", "N", "a b"]))
def test_matcher_output_equals_text_cut_at_stop(deltas: list[str], stop: str) -> None:
    m = StopMatcher((stop,))
    out = "".join(m.feed(d) for d in deltas) + m.flush()
    text = "".join(deltas)
    cut = find_stop(text, (stop,))
    assert out == (text if cut is None else text[:cut])
