"""The profile experiment's bookkeeping: ops by kind, the largest of the rest, the tables."""

from types import SimpleNamespace

from metacurriculum.benchmarks.experiments import profile_student


def _profile(*events):
    rows = [SimpleNamespace(key=k, count=c, self_cpu_time_total=us) for k, c, us in events]
    return SimpleNamespace(key_averages=lambda: rows)


def test_ops_by_kind_and_the_largest_other_ops():
    profile = _profile(
        ("aten::convolution_backward", 3, 4_000_000),
        ("aten::mkldnn_convolution", 3, 2_000_000),
        ("aten::mul", 70, 1_500_000),
        ("aten::fill_", 20, 500_000),
        ("aten::copy_", 9, 250_000),
        ("aten::view", 5, 250_000),
    )
    kinds = profile_student.op_kinds(profile)
    assert kinds == {"conv backward": 4.0, "conv forward": 2.0, "other ops": 2.5}
    top = profile_student.other_ops(profile, 2)
    assert top == {"aten::mul (70 calls)": 1.5, "aten::fill_ (20 calls)": 0.5, "the rest": 0.5}
    assert sum(top.values()) == kinds["other ops"]
    text = profile_student.table("other ops (self CPU)", top)
    assert "| aten::mul (70 calls) | 1.500 | 60% |" in text
    assert text.splitlines()[-1] == "| total | 2.500 | 100% |"
