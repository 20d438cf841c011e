"""A plain-language reading of an explain document: what bounds each op, and what would move it.

:func:`lesson` is a pure function from the document of :mod:`accelsim.report.explain`
to a list of sentences. Every number in a sentence comes from the document: the
ops' bytes, FLOPs and arithmetic intensity, the chip's ridge points, the time
shares, and what a power cap does to the clock. Ops that share what bounds them
and how they would speed up are read together in one sentence.
"""

from __future__ import annotations

from typing import Any

from accelsim.config.schema import DTYPE_BYTES
from accelsim.report.kinds import kind_of
from accelsim.report.kinds.base import ExplainStep, ReportKind
from accelsim.report.wording import TIER_NAMES, finite, percent, sig
from accelsim.units import format_quantity

_MEMORY_BOUNDS = ("sram", "dram", "host", "link")
_MIN_SHARE = 0.01  # ops below this share of the time are left out of the reading
_OVERHEAD_SHARE = 0.3  # above this share of kernel overhead, a bigger batch amortises it


def _bytes(value: float) -> str:
    return format_quantity(value, "bytes")


def _flops(value: float) -> str:
    return format_quantity(value, "ops/s", unit="FLOP")


def _names(ops: list[dict[str, Any]]) -> str:
    """Op names, with numbered layers of one stack as a range: ``top_mlp.0-3``."""
    stacks: dict[str, list[int]] = {}
    order: list[str] = []
    for op in ops:
        name = str(op["name"])
        stem, _, index = name.rpartition(".")
        key = stem if stem and index.isdigit() else name
        if key not in stacks:
            stacks[key] = []
            order.append(key)
        if key != name:
            stacks[key].append(int(index))
    parts = []
    for key in order:
        numbers = sorted(stacks[key])
        parts += _ranges(key, numbers) if numbers else [key]
    if len(parts) > 6:
        return f"{', '.join(parts[:5])} and {len(parts) - 5} more ops"
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _ranges(stem: str, numbers: list[int]) -> list[str]:
    """``top_mlp`` [0, 1, 2, 4] -> ``top_mlp.0-2``, ``top_mlp.4``."""
    out, start = [], numbers[0]
    for prev, cur in zip(numbers, [*numbers[1:], None], strict=True):
        if cur is None or cur != prev + 1:
            out.append(f"{stem}.{start}" if start == prev else f"{stem}.{start}-{prev}")
            if cur is not None:
                start = cur
    return out


def _main_tier(op: dict[str, Any]) -> str | None:
    """The memory tier the op waits on longest (the bound itself for memory-bound ops)."""
    if op["bound"] in _MEMORY_BOUNDS:
        return str(op["bound"])
    times = {t: v for t, v in op.get("memory_time_s", {}).items() if finite(v) and v > 0}
    if times:
        return str(max(times, key=lambda t: times[t]))
    by_tier = {t: v for t, v in op.get("bytes_by_tier", {}).items() if finite(v) and v > 0}
    return str(max(by_tier, key=lambda t: by_tier[t])) if by_tier else None


def _overhead_share(ops: list[dict[str, Any]]) -> float:
    """The share of the ops' time that is fixed kernel overhead (launches, link latency)."""
    time = sum(op["time_s"] for op in ops if finite(op.get("time_s")))
    overhead = sum(op["overhead_s"] for op in ops if finite(op.get("overhead_s")))
    return overhead / time if time > 0 else 0.0


def _memory_and_idle_power_w(totals: dict[str, Any]) -> float | None:
    """The part of a step's average power that no clock lowers: memory traffic and idle."""
    parts = totals.get("energy_by_component_j") or {}
    total = sum(v for v in parts.values() if finite(v))
    power = totals.get("avg_power_w")
    if total <= 0 or not finite(power) or not finite(parts.get("compute", 0.0)):
        return None
    return float(power * (1.0 - parts.get("compute", 0.0) / total))


def _ai_text(ops: list[dict[str, Any]]) -> str:
    values = [op["arithmetic_intensity"] for op in ops if finite(op["arithmetic_intensity"])]
    if not values:
        return "no arithmetic"
    lo, hi = min(values), max(values)
    if sig(lo) == sig(hi):
        return f"{sig(lo)} FLOP/B"
    return f"{sig(lo)} to {sig(hi)} FLOP/B"


def _ridges(doc: dict[str, Any]) -> dict[str, float]:
    return {t: v for t, v in doc.get("ridge_point_flops_per_byte", {}).items() if finite(v)}


class _Reader:
    """Reads one step of an explain document (a batch, a prefill, a decode step)."""

    def __init__(self, doc: dict[str, Any], kind: ReportKind, step: ExplainStep) -> None:
        self.doc = doc
        self.kind = kind
        self.current = step
        self.ridges = _ridges(doc)

    # ------------------------------------------------------------------ one group of ops

    def weight_share(self, op: dict[str, Any]) -> float | None:
        """The share of a GEMM's bytes that are its weights, from its numbers alone: a GEMM
        of a batch of b rows does 2 x b FLOPs per weight, so its weights take
        FLOPs x bytes-per-weight / (2 b) bytes; the rest are activations. Where a kind's
        GEMMs stream their weights only (an LLM's activations stay on chip in this model),
        all of them are."""
        if self.kind.gemm_bytes_are_weights:
            return 1.0
        batch = self.current.batch
        wbytes = DTYPE_BYTES.get(str(self.doc.get("dtype")), 2)
        if not batch or not (finite(op["flops"]) and finite(op["bytes"])) or op["bytes"] <= 0:
            return None
        return min(1.0, op["flops"] * wbytes / (2.0 * batch) / op["bytes"])

    def category(self, op: dict[str, Any]) -> str:
        kind = str(op["kind"])
        if kind == "gemm":
            share = self.weight_share(op)
            if share is None or share >= 0.5:
                return "gemm"
            return "gemm-mixed" if share >= 0.25 else "gemm-activations"
        if kind in ("embedding", "attention", "transfer", "collective"):
            return kind
        return "stream"

    def _ridge_clause(self, ops: list[dict[str, Any]], tier: str | None, above: bool) -> str:
        """ ", 1600x below the DRAM ridge point of 715"."""
        ridge = self.ridges.get(tier) if tier else None
        values = [op["arithmetic_intensity"] for op in ops if finite(op["arithmetic_intensity"])]
        if ridge is None or not values or ridge <= 0 or tier is None:
            return ""
        name = TIER_NAMES.get(tier, tier)
        if above and max(values) < ridge:
            # Compute-bound below the ridge point: the shape (few rows, a partial wave)
            # runs below the large-GEMM rate the ridge point is drawn at.
            return (
                f", below the {name} ridge point of {sig(ridge, 3)} but at a shape that "
                "runs below the large-GEMM rate"
            )
        if len(values) == 1 and values[0] > 0:
            ratio = ridge / values[0] if not above else values[0] / ridge
            if ratio >= 1.05:
                side = "above" if above else "below"
                return f", {sig(ratio)}x {side} the {name} ridge point of {sig(ridge, 3)}"
        side = "above" if above else "below"
        return f", {side} the {name} ridge point of {sig(ridge, 3)}"

    def _memory_advice(self, category: str, tier: str, ops: list[dict[str, Any]]) -> str:
        name = TIER_NAMES.get(tier, tier)
        if category == "embedding":
            if tier == "sram":
                return (
                    "fewer bytes per row (int8) or more SRAM bandwidth would speed it up, "
                    "a bigger batch would not"
                )
            if tier == "host":
                return (
                    "more device memory to hold the cold rows, caching more rows in SRAM or "
                    "fewer bytes per row (int8) would speed it up, a bigger batch would not"
                )
            return (
                "caching more rows in SRAM or fewer bytes per row (int8) would speed it up, "
                "a bigger batch would not"
            )
        if category == "transfer":
            return (
                "a faster host link, or fewer or smaller input features, would speed it up; "
                "a bigger batch would not: its bytes grow with the items"
            )
        if category == "collective":
            return (
                "a faster chip-to-chip link or fewer tensor-parallel chips would speed it up; "
                "a bigger batch would not"
            )
        if category == "attention":
            return (
                "a bigger batch would not help: every sequence reads its own KV cache; a shorter "
                f"context, fewer KV heads, an 8-bit KV cache or more {name} bandwidth would"
            )
        if category == "gemm-mixed":
            return (
                "a bigger batch would help a little: about half of the bytes are weights, read "
                "once per batch, and the rest activations, which grow with it; lower precision "
                f"or more {name} bandwidth would help more"
            )
        if category == "gemm-activations":
            shares = [self.weight_share(op) for op in ops]
            acts = 1.0 - max((s for s in shares if s is not None), default=0.0)
            return (
                f"a bigger batch would barely help: at least {percent(acts)} of the bytes are "
                "activations, which grow with the batch; lower precision or more "
                f"{name} bandwidth would"
            )
        if category == "gemm":
            advice = (
                "a bigger batch would: most of the bytes are weights, and one read of each "
                "serves every item of the batch"
            )
            ais = [op["arithmetic_intensity"] for op in ops if finite(op["arithmetic_intensity"])]
            ridge = self.ridges.get(tier)
            if self.kind.gemm_bytes_are_weights and ais and ridge and min(ais) > 0:
                # A GEMM whose bytes are its weights gains FLOP/B in proportion to the rows
                # one read serves: the step's, where its shape says (an LLM decode: one per
                # sequence), else (the lm_head of an LLM prefill's last prompt token)
                # FLOP/B x bytes-per-weight / 2 of them.
                wbytes = DTYPE_BYTES.get(str(self.doc.get("dtype")), 2)
                rows = float(self.current.weight_rows or max(1.0, min(ais) * wbytes / 2))
                needed = rows * ridge / min(ais)
                unit = self.current.unit
                advice = (
                    "a bigger batch would: the bytes are weights, and one read of each serves "
                    f"every token of the step, so it reaches the ridge at about {sig(needed)} "
                    f"{unit}"
                )
            others = []
            if tier != "sram" and self.kind.weights_fit_sram:
                others.append("keeping the weights in SRAM")
            dtype = str(self.doc.get("dtype"))
            if dtype not in ("int4", "fp4"):  # nothing narrower is modelled
                if dtype not in ("int8", "fp8"):
                    others.append("int8 or fp8 weights")
                elif self.kind.four_bit_weights:
                    others.append("4-bit weights")
            others += [f"more {name} bandwidth"]
            also = f"{', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else others[0]
            return f"{advice}; {also} would too"
        return (
            f"more {name} bandwidth or fewer bytes (lower precision) would speed it up; a bigger "
            "batch would not: its bytes grow with the batch"
        )

    def group_sentence(self, ops: list[dict[str, Any]]) -> str:
        bound = ops[0]["bound"]
        share = sum(op["share"] for op in ops if finite(op["share"]))
        plural = len(ops) > 1
        verb_move, verb_do, it = (
            ("move", "do", "they are") if plural else ("moves", "does", "it is")
        )
        names = _names(ops)
        moved = sum(op["bytes"] for op in ops if finite(op["bytes"]))
        flops = sum(op["flops"] for op in ops if finite(op["flops"]))
        share_text = f" ({percent(share)} of the time)"
        if bound == "overhead":
            return (
                f"{names}{share_text} {'are' if plural else 'is'} so small that the fixed kernel "
                "overhead dominates; fusing ops or a bigger batch would amortise it"
            ) + "."
        if bound == "compute":
            tier = _main_tier(ops[0])
            ridge = self._ridge_clause(ops, tier, above=True)
            overhead = _overhead_share(ops)
            if overhead >= _OVERHEAD_SHARE:
                batch = (
                    f"{percent(overhead)} of {'their' if plural else 'its'} time is fixed kernel "
                    "overhead, which a bigger batch would amortise"
                )
            else:
                batch = "a bigger batch only adds time in proportion"
            return (
                f"{names} {verb_do} {_flops(flops)} at {_ai_text(ops)}{ridge}: {it} "
                f"compute-bound{share_text}; lower precision (int8 or fp8, where the matrix "
                "engine runs it faster) or a higher clock would speed "
                f"{'them' if plural else 'it'} up, more bandwidth or SRAM residency would not; "
                f"{batch}; {'they are' if plural else 'it is'} what a power cap slows first."
            )
        tier = str(bound)
        name = TIER_NAMES.get(tier, tier)
        category = self.category(ops[0])
        if category in ("transfer", "collective") or not any(
            finite(op["arithmetic_intensity"]) and op["arithmetic_intensity"] > 0 for op in ops
        ):
            head = f"{names} {verb_move} {_bytes(moved)} and {verb_do} no arithmetic"
            if category == "collective":
                head = f"{names} {verb_move} {_bytes(moved)} between the chips"
            return (
                f"{head}: {it} bound by {name} bandwidth{share_text}; "
                f"{self._memory_advice(category, tier, ops)}."
            )
        ridge = self._ridge_clause(ops, tier, above=False)
        overhead = _overhead_share(ops)
        if overhead >= 0.5:
            # Small kernels: their launches, not their bytes, take the time.
            return (
                f"{names} {verb_move} {_bytes(moved)} at {_ai_text(ops)}{ridge}, but "
                f"{'take' if plural else 'takes'} {percent(share)} of the time, "
                f"{percent(overhead)} of it fixed kernel overhead: fusing "
                f"{'them' if plural else 'it'} or replaying {'them' if plural else 'it'} "
                f"from a captured graph would help, and a bigger batch would amortise it; more "
                f"{name} bandwidth would barely."
            )
        return (
            f"{names} {verb_move} {_bytes(moved)} at {_ai_text(ops)}{ridge}: {it} bound by "
            f"{name} bandwidth{share_text}; {self._memory_advice(category, tier, ops)}."
        )

    # ------------------------------------------------------------------ a whole step

    def step(self) -> list[str]:
        ops, totals, phase = self.current.ops, self.current.totals, self.current.phase
        prefix = f"{phase.capitalize()}: " if phase else ""

        def lead(text: str) -> str:
            return prefix + text if prefix else text[0].upper() + text[1:]

        shown = [op for op in ops if finite(op.get("share")) and op["share"] >= _MIN_SHARE]
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for op in shown:
            if op["bound"] == "compute":
                heavy = _overhead_share([op]) >= _OVERHEAD_SHARE
                key = ("compute", "overhead" if heavy else "")
            else:
                key = (str(op["bound"]), self.category(op))
            groups.setdefault(key, []).append(op)
        ordered = sorted(groups.values(), key=lambda g: -sum(op["share"] for op in g))
        out = [lead(self._split_sentence(ops, totals))]
        out += [prefix + self.group_sentence(g) for g in ordered]
        hidden = len(ops) - len(shown)
        if hidden:
            out.append(
                f"{prefix}{hidden} more op{'s take' if hidden > 1 else ' takes'} less than "
                f"{percent(_MIN_SHARE)} of the time{' each' if hidden > 1 else ''}."
            )
        out.append(lead(self._cap_sentence(ops, totals)))
        return out

    def _split_sentence(self, ops: list[dict[str, Any]], totals: dict[str, Any]) -> str:
        by_bound: dict[str, float] = {}
        for op in ops:
            if finite(op.get("share")):
                by_bound[op["bound"]] = by_bound.get(op["bound"], 0.0) + op["share"]
        parts = [
            f"{percent(share)} {self._bound_name(bound)}"
            for bound, share in sorted(by_bound.items(), key=lambda kv: -kv[1])
            if share >= 0.005
        ]
        time = totals.get("time_s")
        took = format_quantity(time, "s") if finite(time) else "-"
        return f"{self.current.took} {took}: {', '.join(parts)}."

    @staticmethod
    def _bound_name(bound: str) -> str:
        if bound == "compute":
            return "compute-bound"
        if bound == "overhead":
            return "kernel overhead"
        return f"bound by {TIER_NAMES.get(bound, bound)} bandwidth"

    def _cap_sentence(self, ops: list[dict[str, Any]], totals: dict[str, Any]) -> str:
        capped = totals.get("capped") or {}
        cap, power, tdp = totals.get("power_cap_w"), totals.get("avg_power_w"), totals.get("tdp_w")
        if not (finite(cap) and finite(power)):
            return "its power under a cap is unknown."
        compute_share = sum(
            op["share"] for op in ops if op["bound"] == "compute" and finite(op["share"])
        )
        which = "its TDP" if finite(tdp) and cap == tdp else "the cap"
        cap_text = format_quantity(cap, "W")
        ratio = capped.get("clock_ratio", 1.0)
        if finite(ratio) and ratio < 1.0:
            slowdown = capped.get("slowdown", 1.0)
            return (
                f"it would draw {format_quantity(power, 'W')} at the nominal clock, over "
                f"{which} of {cap_text}: the clock drops to {100 * ratio:.0f}% of nominal and it "
                f"takes {sig(slowdown, 3)}x as long, because {percent(compute_share)} of its "
                "time is compute-bound (memory-bound time does not stretch with the clock)."
            )
        floor = _memory_and_idle_power_w(totals)
        until = (
            f" until the cap nears {format_quantity(floor, 'W')}, what its memory traffic and idle "
            "draw take at any clock"
            if floor is not None
            else ""
        )
        if compute_share < 0.005:
            effect = (
                f"none of its time is compute-bound, so a lower cap would barely slow it{until}"
            )
        elif compute_share < 0.2:
            effect = (
                f"only {percent(compute_share)} of its time is compute-bound, so a lower cap would "
                f"barely slow it{until}"
            )
        else:
            effect = (
                f"a cap below that would lower the clock and stretch the {percent(compute_share)} "
                "of its time that is compute-bound"
            )
        return (
            f"it draws {format_quantity(power, 'W')} on average, within {which} of {cap_text}, "
            f"so it runs at the nominal clock; {effect}."
        )


def _ridge_sentence(doc: dict[str, Any]) -> str:
    ridges = _ridges(doc)
    order = [t for t in ("dram", "sram", "host") if t in ridges]
    if not order:
        return f"{doc.get('chip')} has no memory tier with a known ridge point."
    first, rest = order[0], order[1:]
    others = ", ".join(
        f"{sig(ridges[t], 3)} against {'the host link' if t == 'host' else TIER_NAMES[t]}"
        for t in rest
    )
    return (
        f"On {doc.get('chip')}, the {doc.get('dtype')} ridge point is "
        f"{sig(ridges[first], 3)} FLOP/B against {TIER_NAMES[first]}"
        + (f" ({others})" if others else "")
        + ": an op that does fewer FLOPs per byte it streams from a tier waits on that "
        "tier's bandwidth; one that does more waits on the matrix engines."
    )


def lesson(doc: dict[str, Any]) -> list[str]:
    """Sentences that read an explain document: the chip's ridge points, each step of the
    document's kind (a ranking batch; an LLM prefill and decode), then what the kind adds."""
    kind = kind_of(doc)
    out = [_ridge_sentence(doc)]
    for step in kind.explain_steps(doc):
        out += _Reader(doc, kind, step).step()
    return out + kind.lesson_closing(doc)
