"""The tuner (PatDNN's auto-tuning): choose each FKW convolution's schedule by measuring.

    >>> database = tune(module, ctx, get_backend("host"))          # doctest: +SKIP
    >>> database.save("vgg.tuning.json")                           # doctest: +SKIP
    $ pconv-tune vgg-fkw.mlir --backend aarch64 -o vgg.tuning.json
    $ pconv-opt vgg-fkw.mlir -p 'pconv-apply-tuning{database=vgg.tuning.json}'

Measuring is not an IR transform, so the tuner is a driver: it reads a module at the FKW level
(after `pconv-fkw-pack`), copies each `pconv.fkw_conv2d` with its constant FKW arrays into a
module of its own, lowers and costs it with each candidate schedule through the backend
(`Backend.cost`: measured seconds on the host, llvm-mca's cycles for aarch64), and writes the
best schedule of every layer to a tuning database (`TuningDatabase`, JSON), for the layer's
target (`tuning_target`: `host-avx2`, `aarch64-cortex-a76`, ...) with its pattern statistics.
The pure pass `pconv-apply-tuning` then applies it.

The search space is a set of genes (`genes`), each a schedule parameter or two that vary
together with the values they may take: `vector_width` (8, 16 lanes), `tile` (unroll_rows x
unroll_cols, `GENETIC_TILES`), `partial_sums` (1, 2), `unroll_filters` (1, 2, 4),
`tile_channels` (0, 32, 64) and `specialize` (0, or 1 with `chunk_fmas` of `CHUNK_FMAS`). The
backend's `tunable` (or `steps=`) says which genes vary; every other parameter keeps the op's
value, so a schedule given by the user (say `partial_sums=2`) is kept. A candidate must keep
its accumulators (rows x vectors x partial sums x lock-step filters) within the register file:
`accumulator_budget`, 16 registers (AVX2) or 32 (AVX-512, NEON) less `RESERVED_REGISTERS`, a
vector of more lanes than a register holding two. A `specialize = 1` candidate is tried only
where `specialize_pays`: enough register tiles per image to reuse its straight-line code, and
not so many multiply-adds per tile that building it takes minutes.

Two searches (`search=`, `pconv-tune --search`):

- `genetic` (the default, as PatDNN's auto-tuner; `genetic_search`): a population of
  schedules, the op's own and the backend's defaults first and the rest random; each
  generation keeps the best (`elite`) and breeds the others by tournament selection, uniform
  crossover of genes and mutation. A space no larger than the search's measurement budget is
  measured whole instead. It stops after `generations` or when its time budget (seconds per
  layer, and a deadline for the whole module) runs out; it is deterministic for a `seed`
  (given the costs). No schedule is measured twice, and a candidate that fails (a verifier
  error, a tool error) is dropped with a note. The result is the cheapest schedule measured,
  never one worse than the op's own.
- `coordinate`: one gene after another from the op's schedule, in the order of `tunable`,
  keeping the best so far (`TILES` for the tile).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.utils.exceptions import VerifyException

from pconv_mlir import fkw
from pconv_mlir.backends import BACKENDS, get_backend
from pconv_mlir.backends.base import Backend
from pconv_mlir.dialects.pconv import SCHEDULE_FIELDS, FkwConv2dOp, ScheduleAttr, window_of
from pconv_mlir.elements import using_storage
from pconv_mlir.errors import OptionError, PconvError, first_line, op_location
from pconv_mlir.ir import make_context, parse_module
from pconv_mlir.passes.pconv_apply_tuning import TuningDatabase, layer_key, layer_stats
from pconv_mlir.pipeline import Pipeline

SEARCHES = ("genetic", "coordinate")
"""The search strategies of `tune` and `pconv-tune --search`."""

TILES = ((2, 1), (4, 1), (6, 1), (8, 1), (2, 2), (3, 2), (4, 2), (2, 3), (3, 3))
"""The (unroll_rows, unroll_cols) register tiles the coordinate search tries."""

GENETIC_TILES = tuple((r, u) for u in (1, 2, 3, 4) for r in range(1, 9))
"""The register tiles the genetic search may pick (before the accumulator budget)."""

CHUNK_FMAS = (768, 1536, 3072)
"""The `chunk_fmas` values tried with `specialize = 1`."""

RESERVED_REGISTERS = 4
"""Vector registers the generated code needs besides the accumulators (input vectors and the
broadcast weights)."""

STEPS: dict[str, tuple[dict[str, int], ...]] = {
    "vector_width": ({"vector_width": 8}, {"vector_width": 16}),
    "partial_sums": ({"partial_sums": 1}, {"partial_sums": 2}),
    "unroll_filters": ({"unroll_filters": 1}, {"unroll_filters": 2}, {"unroll_filters": 4}),
    "tile_channels": ({"tile_channels": 0}, {"tile_channels": 32}, {"tile_channels": 64}),
    "specialize": (
        {"specialize": 0},
        *({"specialize": 1, "chunk_fmas": c} for c in CHUNK_FMAS),
    ),
}
"""The values each gene other than the tile may take (the coordinate search tries them in
order)."""


@dataclass(frozen=True)
class Gene:
    """Schedule parameters that vary together, and the values they may take."""

    name: str
    fields: tuple[str, ...]
    alleles: tuple[tuple[int, ...], ...]


def genes(names: Sequence[str], schedule: ScheduleAttr) -> list[Gene]:
    """The genes `names` (`tile` or a key of `STEPS`) of a search from `schedule`.

    With `specialize = 0` the chunk size does not matter: that allele keeps `schedule`'s."""
    result = []
    for name in names:
        if name == "tile":
            result.append(Gene("tile", ("unroll_rows", "unroll_cols"), GENETIC_TILES))
            continue
        changes = STEPS[name]
        fields = tuple(dict.fromkeys(k for change in changes for k in change))
        alleles = tuple(tuple(change.get(k, schedule[k]) for k in fields) for change in changes)
        result.append(Gene(name, fields, alleles))
    return result


def accumulator_budget(backend: Backend, vector_width: int, max_acc: int | None = None) -> int:
    """The accumulators a schedule of `vector_width` lanes may keep: `max_acc` when given,
    else what the backend's vector register file holds after `RESERVED_REGISTERS` (16
    registers on AVX2, 32 with AVX-512 or NEON; a vector wider than a register takes several),
    and 8 for a backend without a CPU machine."""
    if max_acc is not None:
        return max_acc
    machine = getattr(backend, "machine", None)
    if machine is None:
        return 8
    per_vector = max(1, -(-vector_width * 32 // machine.vector_bits))
    return max(1, (machine.vector_registers - RESERVED_REGISTERS) // per_vector)


def tuning_target(backend: Backend) -> str:
    """What a tuning is for: the backend and what distinguishes its machine, e.g. `host-avx2`,
    `host-avx512` (the host's vector ISA), `aarch64-cortex-a76` (the CPU llvm-mca models),
    `x86_64-x86-64-v3`; the backend's name for a backend without a CPU machine."""
    machine = getattr(backend, "machine", None)
    if machine is None:
        return backend.name
    if backend.name == "host":
        if machine.name != "x86_64":
            return f"host-{machine.name}"
        isa = next(
            (i for f, i in (("avx512f", "avx512"), ("avx2", "avx2")) if f in machine.features),
            "x86_64",
        )
        return f"host-{isa}"
    return f"{backend.name}-{getattr(backend, 'cpu', None) or machine.cpu}"


def standalone(op: FkwConv2dOp, schedule: ScheduleAttr) -> ModuleOp:
    """A module `func @conv(%x[, %bias][, %residual]) -> tensor` holding a copy of `op` with
    `schedule`.

    The FKW arrays (and a constant bias) are copied as constants; channel blocks are re-packed
    when `schedule` changes them."""
    arrays = op.fkw_arrays()
    assert arrays is not None
    channels = op.input.type.get_shape()[1]
    if fkw.channel_blocks(channels, schedule["tile_channels"]) != op.channel_blocks():
        arrays = fkw.reblock(arrays, op.patterns.patterns, channels, schedule["tile_channels"])
    bias_arg = op.bias is not None and not isinstance(op.bias.owner, arith.ConstantOp)
    inputs = [op.input.type] + ([op.bias.type] if bias_arg else [])
    if op.residual is not None:
        inputs.append(op.residual.type)
    module = ModuleOp([])
    with ImplicitBuilder(module.body):
        function = func.FuncOp("conv", (inputs, [op.result.type]))
        with ImplicitBuilder(function.body) as args:
            from pconv_mlir.elements import dense_constant

            copies: list[SSAValue] = [dense_constant(a).result for a in arrays.arrays()]
            bias = None
            if op.bias is not None:
                if bias_arg:
                    bias = args[1]
                else:
                    constant = op.bias.owner
                    assert isinstance(constant, arith.ConstantOp)
                    bias = arith.ConstantOp(constant.value, op.bias.type).result
            groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
            conv = FkwConv2dOp(
                args[0],
                copies,
                bias,
                op.result.type,
                op.patterns,
                schedule,
                **window_of(op),
                filter_groups=groups,
                residual=args[-1] if op.residual is not None else None,
            )
            func.ReturnOp(conv.result)
    return module


def kernel_loop_trips(op: FkwConv2dOp, schedule: ScheduleAttr | None = None) -> int:
    """How many times the kernel loop body runs under `schedule` (default: the op's):
    register tiles x kept kernels."""
    from pconv_mlir.lowering.convert_pconv_to_loops import tile_count

    schedule = op.schedule if schedule is None else schedule
    n, _, oh, ow = op.result.type.get_shape()
    kernels = op.index.type.get_shape()[0]
    return n * tile_count(oh, ow, schedule) * max(1, kernels)


def accumulators(schedule: ScheduleAttr) -> int:
    """Vector accumulators a schedule keeps live: rows x vectors x partial sums x filters
    (specialised code has one partial sum)."""
    partial_sums = 1 if schedule["specialize"] else schedule["partial_sums"]
    tile = schedule["unroll_rows"] * schedule["unroll_cols"]
    return tile * partial_sums * schedule["unroll_filters"]


SPECIALIZED_FMA_LIMIT = 150_000
"""Most vector multiply-adds per register tile that a `specialize = 1` candidate may have: its
straight-line code is about 14 bytes per multiply-add on x86-64, and building 73K of them took
about 3 minutes here (xDSL, mlir-opt and clang together), so bigger layers are not tried."""

SPECIALIZED_MIN_TILES = 32
"""Fewest register tiles per image for a `specialize = 1` candidate: every chunk of its code
runs once per tile, so with few tiles the instructions cost as much to fetch as the data."""


def specialize_pays(op: FkwConv2dOp, schedule: ScheduleAttr) -> bool:
    """Whether `op` with `schedule` is worth trying as specialised code: enough register tiles
    per image to reuse it (`SPECIALIZED_MIN_TILES`) and at most `SPECIALIZED_FMA_LIMIT` vector
    multiply-adds per tile."""
    from pconv_mlir.lowering.convert_pconv_to_loops import register_tile, tile_count

    _, _, oh, ow = op.result.type.get_shape()
    kernels, taps = op.weight.type.get_shape()
    rows, cols = register_tile(oh, ow, schedule)
    fmas = kernels * taps * rows * cols
    return tile_count(oh, ow, schedule) >= SPECIALIZED_MIN_TILES and fmas <= SPECIALIZED_FMA_LIMIT


def _steps(backend: Backend, steps: Sequence[str] | None) -> list[str]:
    chosen = list(backend.tunable if steps is None else steps)
    unknown = [s for s in chosen if s != "tile" and s not in STEPS]
    if unknown:
        raise OptionError(f"unknown tuning step '{unknown[0]}' (steps: tile, {', '.join(STEPS)})")
    return chosen


def schedule_key(schedule: ScheduleAttr) -> str:
    """How a candidate is named in the `costs` of a search: its CPU parameters,
    `vector_width=8, unroll_rows=3, ...` (the tuner never changes the GPU ones)."""
    return ", ".join(
        f"{k}={v}" for k, v in schedule.as_dict().items() if not SCHEDULE_FIELDS[k].gpu
    )


def measure(
    op: FkwConv2dOp, ctx: Context, backend: Backend, schedule: ScheduleAttr, repeats: int
) -> float:
    """The backend's cost of `op` alone with `schedule` (lowered by the backend)."""
    module = Pipeline(backend.lowering()).run(standalone(op, schedule), ctx)
    return backend.cost(module, ctx, "conv", repeats=repeats, trips=kernel_loop_trips(op, schedule))


_Genome = tuple[tuple[int, ...], ...]
"""A candidate of the genetic search: each gene's values, in the order of its genes."""


@dataclass
class SearchResult:
    """What a search found: the best schedule and its cost, every measured candidate's cost
    by `schedule_key` (in the order measured; `inf` for one that failed), and why those that
    failed did."""

    best: ScheduleAttr
    cost: float
    costs: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    generations: int = 0


class _Costs:
    """The cost of each schedule, measured once; failures (other than of the first schedule,
    the op's own) cost `inf`; `expired()` once the deadline has passed."""

    def __init__(
        self,
        cost: Callable[[ScheduleAttr], float],
        deadline: float | None,
        report: Callable[[str], None] | None,
    ) -> None:
        self.cost, self.deadline, self.report = cost, deadline, report
        self.result: SearchResult | None = None
        self.known: dict[ScheduleAttr, float] = {}

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def __call__(self, schedule: ScheduleAttr) -> float:
        if schedule in self.known:
            return self.known[schedule]
        key = schedule_key(schedule)
        if self.result is None:  # the op's own schedule: a failure is the caller's problem
            value = float(self.cost(schedule))
            self.result = SearchResult(schedule, value)
        else:
            try:
                value = float(self.cost(schedule))
            except Exception as e:  # a verifier or tool error: the candidate is out
                value = math.inf
                self.result.failures[key] = first_line(e)
                if self.report is not None:
                    self.report(f"rejected {key}: {first_line(e)}")
        self.known[schedule] = value
        self.result.costs[key] = value
        if value < self.result.cost:
            self.result.best, self.result.cost = schedule, value
        return value


def genetic_search(
    gene_list: Sequence[Gene],
    cost: Callable[[ScheduleAttr], float],
    starts: Sequence[ScheduleAttr],
    *,
    valid: Callable[[ScheduleAttr], bool] | None = None,
    population: int = 8,
    generations: int = 5,
    elite: int = 2,
    tournament: int = 3,
    crossover: float = 0.9,
    seed: int = 0,
    deadline: float | None = None,
    report: Callable[[str], None] | None = None,
) -> SearchResult:
    """PatDNN's genetic search over `gene_list` (see the module docstring).

    `cost(schedule)` is called once per schedule; `starts` (the first is the op's own) are
    measured first whatever `valid` says; the other candidates satisfy `valid` (and
    `ScheduleAttr.verify`). Stops after `generations` generations (the first included) or at
    `deadline` (`time.monotonic()`); the starts are always measured.
    """
    if not starts:
        raise ValueError("genetic_search needs a starting schedule")
    if population < 1 or generations < 1:
        raise OptionError("population and generations must be at least 1")
    rng = random.Random(seed)
    costs = _Costs(cost, deadline, report)
    base = starts[0]

    def genome_of(schedule: ScheduleAttr) -> _Genome:
        return tuple(tuple(schedule[f] for f in g.fields) for g in gene_list)

    def schedule_of(genome: _Genome) -> ScheduleAttr:
        return base.replace(
            **{
                f: v
                for g, values in zip(gene_list, genome, strict=True)
                for f, v in zip(g.fields, values, strict=True)
            }
        )

    checked: dict[_Genome, bool] = {}

    def allowed(genome: _Genome) -> bool:
        if genome not in checked:
            schedule = schedule_of(genome)
            try:
                schedule.verify()
                checked[genome] = valid is None or valid(schedule)
            except VerifyException:
                checked[genome] = False
        return checked[genome]

    def evaluate(genomes: Sequence[_Genome]) -> None:
        for genome in genomes:
            if costs.expired():
                return
            costs(schedule_of(genome))

    def cost_of(genome: _Genome) -> float:
        return costs.known.get(schedule_of(genome), math.inf)

    def select(ranked: Sequence[_Genome]) -> _Genome:
        """Tournament selection: the cheapest of a few members drawn at random."""
        return min((rng.choice(ranked) for _ in range(max(1, tournament))), key=cost_of)

    first = list(dict.fromkeys(genome_of(s) for s in starts))
    costs(schedule_of(first[0]))
    for genome in first[1:]:
        costs(schedule_of(genome))
    result = costs.result
    assert result is not None

    budget = population * generations
    size = math.prod(len(g.alleles) for g in gene_list)
    if size <= max(budget, len(first)):  # a small space: measure it whole
        import itertools

        every = [g for g in itertools.product(*(g.alleles for g in gene_list)) if allowed(g)]
        evaluate([g for g in every if g not in first])
        result.generations = 1
        if report is not None:
            report(f"measured all {len(result.costs)} schedules of the space")
        return result

    def random_genome() -> _Genome | None:
        for _ in range(200):
            genome = tuple(rng.choice(g.alleles) for g in gene_list)
            if allowed(genome):
                return genome
        return None

    def mutate(genome: _Genome, rate: float) -> _Genome:
        """Each gene changes with probability `rate`: to a neighbouring value (its alleles are
        in order) or, as often, to any value."""
        changed = list(genome)
        for i, g in enumerate(gene_list):
            if rng.random() >= rate:
                continue
            if genome[i] in g.alleles and rng.random() < 0.5:
                at = g.alleles.index(genome[i]) + rng.choice((-1, 1))
                changed[i] = g.alleles[min(max(at, 0), len(g.alleles) - 1)]
            else:
                changed[i] = rng.choice(g.alleles)
        return tuple(changed)

    def is_new(genome: _Genome, taken: Sequence[_Genome]) -> bool:
        return genome not in taken and schedule_of(genome) not in costs.known and allowed(genome)

    members = list(first)
    for _ in range(50 * population):
        if len(members) >= population:
            break
        genome = random_genome()
        if genome is not None and is_new(genome, members):
            members.append(genome)
    evaluate(members[len(first) :])
    result.generations = 1
    rate = 1 / max(1, len(gene_list))

    def genes_text(schedule: ScheduleAttr) -> str:
        return ", ".join(f"{f}={schedule[f]}" for g in gene_list for f in g.fields)

    def say() -> None:
        if report is not None:
            report(
                f"generation {result.generations}: best {result.cost:.6g} "
                f"({genes_text(result.best)}), {len(result.costs)} measured"
                + (f", {len(result.failures)} rejected" if result.failures else "")
            )

    say()
    while result.generations < generations and not costs.expired():
        ranked = sorted(members, key=cost_of)
        children = ranked[: max(0, min(elite, population))]

        for _ in range(50 * population):
            if len(children) >= population:
                break
            a, b = select(ranked), select(ranked)
            if rng.random() < crossover:
                child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))
            else:
                child = a
            child = mutate(child, rate)
            for _ in range(20):  # an already measured child: mutate it further
                if is_new(child, children):
                    break
                child = mutate(child, max(rate, 0.5))
            if is_new(child, children):
                children.append(child)
        fresh = [c for c in children if schedule_of(c) not in costs.known]
        if not fresh:  # nothing left to try near the population
            break
        evaluate(fresh)
        members = children
        result.generations += 1
        say()
    return result


def tune_layer(
    op: FkwConv2dOp,
    ctx: Context,
    backend: Backend,
    *,
    search: str = "genetic",
    max_acc: int | None = None,
    repeats: int = 3,
    steps: Sequence[str] | None = None,
    population: int = 8,
    generations: int = 5,
    seed: int = 0,
    budget: float | None = None,
    deadline: float | None = None,
    cost: Callable[[ScheduleAttr], float] | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[ScheduleAttr, float, dict[str, float]]:
    """The best schedule found for `op`, its cost, and every candidate's cost (by
    `schedule_key`, `inf` for a candidate that failed).

    The op's own schedule is the first candidate (and with the genetic search the backend's
    defaults the second); the others keep at most `accumulator_budget` accumulators. `steps`
    (default: the backend's `tunable`) are the genes that vary. `budget` (seconds for this
    layer) and `deadline` (`time.monotonic()`) stop the genetic search early. `cost(schedule)`
    replaces measuring (`measure`), for tests.
    """
    if search not in SEARCHES:
        raise OptionError(f"unknown search '{search}' (searches: {', '.join(SEARCHES)})")
    names = _steps(backend, steps)
    if cost is None:

        def cost(schedule: ScheduleAttr) -> float:
            return measure(op, ctx, backend, schedule, repeats)

    def fits(schedule: ScheduleAttr) -> bool:
        if schedule["specialize"] and not specialize_pays(op, schedule):
            return False
        return accumulators(schedule) <= accumulator_budget(
            backend, schedule["vector_width"], max_acc
        )

    if budget is not None:
        ends = time.monotonic() + budget
        deadline = ends if deadline is None else min(deadline, ends)
    if search == "coordinate":
        return _coordinate(op, backend, names, cost, fits, report)
    defaults = op.schedule.replace(
        **{
            k: v
            for k, v in backend.schedule_defaults().items()
            if any(k in g.fields for g in genes(names, op.schedule))
        }
    )
    found = genetic_search(
        genes(names, op.schedule),
        cost,
        [op.schedule, defaults],
        valid=fits,
        population=population,
        generations=generations,
        seed=seed,
        deadline=deadline,
        report=report,
    )
    return found.best, found.cost, found.costs


def _coordinate(
    op: FkwConv2dOp,
    backend: Backend,
    names: Sequence[str],
    cost: Callable[[ScheduleAttr], float],
    fits: Callable[[ScheduleAttr], bool],
    report: Callable[[str], None] | None,
) -> tuple[ScheduleAttr, float, dict[str, float]]:
    """The coordinate search: each gene in turn from the op's schedule, keeping the best."""
    costs = _Costs(cost, None, report)
    best = op.schedule
    best_cost = costs(best)
    for step in names:
        if step == "tile":
            changes = [{"unroll_rows": r, "unroll_cols": u} for r, u in TILES]
        else:
            changes = list(STEPS[step])
        tried = []
        for change in changes:
            schedule = best.replace(**change)
            if schedule != op.schedule and not fits(schedule):
                continue
            value = costs(schedule)
            tried.append((change, value))
            if value < best_cost:
                best, best_cost = schedule, value
        if report is not None:
            listing = ", ".join(
                f"{'x'.join(str(v) for v in c.values())}: {_format_cost(v, backend)}"
                for c, v in tried
            )
            report(f"{step} {listing}")
    assert costs.result is not None
    return best, best_cost, costs.result.costs


def _format_cost(cost: float, backend: Backend) -> str:
    if math.isinf(cost):
        return "failed"
    return f"{cost * 1e3:.3f} ms" if backend.cost_unit == "s" else f"{cost:.0f}"


def tune(
    module: ModuleOp,
    ctx: Context,
    backend: Backend,
    *,
    search: str = "genetic",
    max_acc: int | None = None,
    repeats: int = 3,
    steps: Sequence[str] | None = None,
    population: int = 8,
    generations: int = 5,
    seed: int = 0,
    budget: float | None = None,
    total_budget: float | None = None,
    database: TuningDatabase | None = None,
    target: str | None = None,
    retune: bool = True,
    report: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TuningDatabase:
    """Tune every `pconv.fkw_conv2d` of `module` whose FKW arrays are constants.

    Returns `database` (or a new one) with one entry per layer for `target` (default:
    `tuning_target(backend)`); `module` is not changed. With `retune=False` a layer the
    database already knows for the target (`TuningDatabase.lookup`, nearest statistics
    included) is not tuned again. `budget` is seconds per layer, `total_budget` seconds for
    the module (the genetic search; the op's own schedule and the defaults are measured
    whatever the budget). `report(line)` receives every step of the search, `progress(line)`
    one line per layer.
    """
    if (max_acc is not None and max_acc < 1) or repeats < 1:
        raise OptionError("max_acc and repeats must be at least 1")
    if search not in SEARCHES:
        raise OptionError(f"unknown search '{search}' (searches: {', '.join(SEARCHES)})")
    names = _steps(backend, steps)
    target = target or tuning_target(backend)
    database = database if database is not None else TuningDatabase()
    database.backend, database.machine = backend.name, backend.describe()
    deadline = None if total_budget is None else time.monotonic() + total_budget
    with using_storage(ctx):
        ops = [op for op in module.walk() if isinstance(op, FkwConv2dOp)]
        for number, op in enumerate(ops, 1):
            where = f"[{number}/{len(ops)}] {op_location(op)}"
            if op.fkw_arrays() is None:
                if report is not None:
                    report(f"{op_location(op)}: skipped: its FKW arrays are not constants")
                elif progress is not None:
                    progress(f"{where}: skipped: its FKW arrays are not constants")
                continue
            key, stats = layer_key(op), layer_stats(op)
            known = database.lookup(key, target, stats)
            if not retune and known is not None:
                if progress is not None:
                    progress(f"{where}: {key}: in the database ({known.describe()})")
                continue

            def say(line: str, op: FkwConv2dOp = op) -> None:
                if report is not None:
                    report(f"{op_location(op)}: {backend.name} {backend.cost_unit}: {line}")

            started = time.monotonic()
            best, cost, costs = tune_layer(
                op,
                ctx,
                backend,
                search=search,
                max_acc=max_acc,
                repeats=repeats,
                steps=names,
                population=population,
                generations=generations,
                seed=seed,
                budget=budget,
                deadline=deadline,
                report=say,
            )
            tuned = {k: best[k] for g in genes(names, best) for k in g.fields}
            say(f"chose {tuned}")
            first = next(iter(costs.values()))
            if progress is not None:
                gain = f", {first / cost:.2f}x its own" if cost > 0 and math.isfinite(first) else ""
                unit = "" if backend.cost_unit == "s" else f" {backend.cost_unit}"
                progress(
                    f"{where}: {_format_cost(cost, backend)}{unit}{gain}, {len(costs)} measured in "
                    f"{time.monotonic() - started:.1f} s: {tuned}"
                )
            database.record(
                key,
                tuned,
                cost,
                backend.cost_unit,
                target=target,
                stats=stats,
                location=op_location(op),
                search=search,
                candidates={k: v for k, v in costs.items() if math.isfinite(v)},
            )
    return database


def main(argv: Sequence[str] | None = None) -> int:
    """`pconv-tune INPUT -o DATABASE [--backend NAME]`: tune an FKW-level module."""
    parser = argparse.ArgumentParser(
        prog="pconv-tune",
        description="Choose each pconv.fkw_conv2d's schedule by measuring (host) or by "
        "llvm-mca (aarch64, x86_64), and write a tuning database for pconv-apply-tuning.",
    )
    parser.add_argument("input", help="an .mlir file at the FKW level (after pconv-fkw-pack)")
    parser.add_argument("-o", "--output", required=True, help="the tuning database (JSON)")
    parser.add_argument("--backend", default="host", choices=sorted(BACKENDS))
    parser.add_argument("--cpu", default=None, help="clang -march/-mcpu instead of the default")
    parser.add_argument("--search", default="genetic", choices=SEARCHES, help="default genetic")
    parser.add_argument(
        "--max-acc",
        type=int,
        default=None,
        help="accumulators at most (default: what the vector register file holds)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per candidate")
    parser.add_argument(
        "--steps",
        default=None,
        help="comma-separated genes to vary (tile, vector_width, partial_sums, unroll_filters, "
        "tile_channels, specialize; default: what the backend's cost can rank)",
    )
    parser.add_argument(
        "--population", type=int, default=8, help="genetic: schedules per generation"
    )
    parser.add_argument("--generations", type=int, default=5, help="genetic: generations at most")
    parser.add_argument("--seed", type=int, default=0, help="genetic: random seed")
    parser.add_argument("--budget", type=float, default=None, help="genetic: seconds per layer")
    parser.add_argument(
        "--total-budget", type=float, default=None, help="genetic: seconds for the whole module"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the layers OUTPUT already holds for this target and tune only the others",
    )
    parser.add_argument("--report", action="store_true", help="print every candidate's cost")
    args = parser.parse_args(argv)
    try:
        backend = get_backend(args.backend, cpu=args.cpu)
        ctx = make_context(own_resources=True)
        try:
            with open(args.input) as f:
                text = f.read()
        except OSError as e:
            raise PconvError(
                f"{args.input}: error: could not open input file: {e.strerror}"
            ) from None
        module = parse_module(text, ctx, name=args.input)
        module.verify()
        say = (lambda line: print(line, file=sys.stderr)) if args.report else None
        steps = None if args.steps is None else [s for s in args.steps.split(",") if s]
        from pathlib import Path

        existing = None
        if args.update and Path(args.output).exists():
            existing = TuningDatabase.load(args.output)
        database = tune(
            module,
            ctx,
            backend,
            search=args.search,
            max_acc=args.max_acc,
            repeats=args.repeats,
            steps=steps,
            population=args.population,
            generations=args.generations,
            seed=args.seed,
            budget=args.budget,
            total_budget=args.total_budget,
            database=existing,
            retune=not args.update,
            report=say,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        database.save(args.output)
    except PconvError as e:
        print(first_line(e), file=sys.stderr)
        return 1
    except Exception as e:  # a verifier or tool error: one line, never a traceback
        from pconv_mlir.ir import describe_failure

        print(describe_failure(None, e), file=sys.stderr)
        return 1
    print(f"{args.output}: {len(database.layers)} layers tuned for {backend.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
