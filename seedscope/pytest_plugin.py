"""The seedscope pytest plugin: scoped tests, per-test seeds, seeded collection, leak detection.

Registered through the ``pytest11`` entry point as ``seedscope``. Importing
it imports pytest and seedscope's light core only, never numpy or torch: the
checks read those libraries through ``sys.modules`` when a test has already
imported them. See ``docs/testing.md`` for the user's guide.

Installed and unused, it says nothing: the report header gets a line only
when an option or ini setting turns something on, and the summary one only
when a leak was reported. Suites that check their own output (plugin test
suites do) see no difference.

How a test runs under a scope
    The scope is entered just before the test's first *function-scoped*
    fixture is set up (or, for a test without one, just before its call), and
    exited by a finalizer on the test item that runs after the last
    function-scoped fixture is torn down. Fixtures of wider scope are set up
    and torn down outside it, so what a module fixture draws does not depend
    on which test happened to run first. The same bracket is what leak
    detection compares across.

Per-test seeds
    ``derive_seed(N, nodeid)``: N is ``--seedscope-seed`` (or the ini option,
    or ``$SEEDSCOPE_SEED``, or 0), the node id is the one pytest prints. Only
    those two go in, so the seed does not depend on order, selection or
    pytest-xdist's distribution.

Collection
    With N given, each test module and class is collected (the module
    imported, its parametrizations built) in a scope of the random sources
    seeded with ``derive_seed(N, its node id)``: what it draws at import
    depends on N and the module alone, whichever other modules are collected.
"""

from __future__ import annotations

import functools
import os
import pickle
import shlex
import sys
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from ._derive import derive_seed
from ._errors import SeedscopeWarning
from ._scope import ActiveScope, Scope, deterministic, live_stack
from ._seed import SEED_TEXT, parse_seed, seed_from_environment, validate_seed
from .sources import EnvironmentVariables, Source, TorchFlags, default_sources
from .sources.environ import MANAGED, decode, raw_reader

if TYPE_CHECKING:
    from _pytest.fixtures import FixtureDef, SubRequest

__all__ = ["LeakWarning", "seedscope_scope"]

SEED_OPTION = "--seedscope-seed"
LEAKS_OPTION = "--seedscope-leaks"
MARKER = "deterministic"
LEAK_MODES = ("off", "warn", "error", "rng")
DEFAULT_LEAKS = "warn"
CACHE_KEY = "seedscope/seed"
_SEED_VALUES = f"{SEED_TEXT}, 'random' or 'last'"
_WORKER_KEY = "seedscope_seed"
_RESTORED = "(seedscope restored them)"  # ends every message about restored settings


class LeakWarning(SeedscopeWarning):
    """A test left a determinism setting (or, checked with ``rng``, global RNG state) changed."""


# -- options ---------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seedscope", "seedscope: reproducible randomness")
    group.addoption(
        SEED_OPTION,
        dest="seedscope_seed",
        default=None,
        metavar="N|random|last",
        help="Run every test in a seedscope scope, each with a seed derived from N and its "
        "node id, and collect each test module in a scope seeded from N and its node id. "
        "'random' picks N (and prints it), 'last' reuses the previous run's N. "
        "An explicit seed on a @pytest.mark.deterministic marker wins. "
        "Ini option: seedscope_seed.",
    )
    group.addoption(
        LEAKS_OPTION,
        dest="seedscope_leaks",
        default=None,
        metavar="off|warn|error|rng",
        help="Report tests that leave torch determinism settings or seed and determinism "
        "environment variables (PYTHONHASHSEED, PL_GLOBAL_SEED, TF_DETERMINISTIC_OPS, ...) "
        "changed, and restore them: as warnings (warn, the default) or as errors (error). "
        "'rng' also warns about tests, and test modules at collection, that leave the global "
        "random, numpy or torch generator state changed. Ini option: seedscope_leaks.",
    )
    parser.addini("seedscope_seed", help=f"Default for {SEED_OPTION}.", default="")
    parser.addini(
        "seedscope_leaks", help=f"Default for {LEAKS_OPTION} ({DEFAULT_LEAKS}).", default=""
    )


class _Root(NamedTuple):
    """The N that per-test seeds derive from, and where it came from."""

    seed: int
    how: str  # for the header


def _parse_seed_option(raw: str, what: str, config: pytest.Config) -> _Root:
    value = raw.strip()
    if value == "random":
        return _Root(int.from_bytes(os.urandom(4), "little"), "picked at random")
    if value == "last":
        cache = getattr(config, "cache", None)
        if cache is None:
            raise pytest.UsageError(
                f"{what}=last needs pytest's cache (the cacheprovider plugin is disabled)"
            )
        previous = cache.get(CACHE_KEY, None)
        try:
            return _Root(validate_seed(previous), "the last run's")
        except (TypeError, ValueError):
            seed = int.from_bytes(os.urandom(4), "little")
            return _Root(seed, "picked at random: no previous run recorded one")
    try:
        seed = parse_seed(raw, what=what)  # as given: ' 5' is refused, not stripped
    except ValueError:
        raise pytest.UsageError(f"{what} must be {_SEED_VALUES}, got {raw!r}") from None
    return _Root(seed, "given")


def _parse_leaks(config: pytest.Config) -> tuple[str, bool]:
    """The leak mode, and whether an option or ini setting chose it."""
    raw: str | None = config.getoption("seedscope_leaks")
    what = LEAKS_OPTION
    if raw is None:
        raw = str(config.getini("seedscope_leaks"))
        what = "ini option seedscope_leaks"
        if not raw:
            return DEFAULT_LEAKS, False
    mode = raw.strip()
    if mode not in LEAK_MODES:
        raise pytest.UsageError(f"{what} must be one of {', '.join(LEAK_MODES)}, got {raw!r}")
    return mode, True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(seed=None, strict=False, warn_only=False): run the test's function-scoped "
        "fixtures, call and teardown in one seedscope scope; without a seed, the seed is "
        f"derived from {SEED_OPTION} and the test's node id",
    )
    leaks, leaks_chosen = _parse_leaks(config)
    root: _Root | None = None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKER_KEY in workerinput:
        # pytest-xdist worker: the controller resolved 'random' and 'last'.
        passed = workerinput[_WORKER_KEY]
        if passed is not None:
            root = _Root(validate_seed(passed[0]), str(passed[1]))
    else:
        raw: str | None = config.getoption("seedscope_seed")
        what = SEED_OPTION
        if raw is None:
            raw = str(config.getini("seedscope_seed")) or None
            what = "ini option seedscope_seed"
        if raw is not None:
            root = _parse_seed_option(raw, what, config)
            cache = getattr(config, "cache", None)
            if cache is not None and workerinput is None:
                cache.set(CACHE_KEY, root.seed)
    session = _Session(config, root, leaks, announce=root is not None or leaks_chosen)
    config.pluginmanager.register(session, "seedscope-session")
    if root is not None or leaks == "rng":
        config.pluginmanager.register(_Collection(session), "seedscope-collection")


# -- per-test plans ---------------------------------------------------------------


class _Plan(NamedTuple):
    """How one test runs under a scope: made at collection, used by each run."""

    scope: Scope
    seed: int
    derived_from: int | None  # N, when the seed was derived


class _Run:
    """One run of one test in a scope: what begin() set up and end_scope() undoes."""

    __slots__ = ("active", "environ", "hypothesis", "plan", "randomly")

    def __init__(self, plan: _Plan, active: ActiveScope, environ: tuple[Any, ...] | None) -> None:
        self.plan = plan
        self.active = active
        # Other tools' variables before the test, which the scope leaves alone.
        self.environ = environ
        self.randomly = False
        self.hypothesis: tuple[Any, Any, Any] | None = None


_PLAN = pytest.StashKey[_Plan]()


def _marker_arguments(seed: object = None, strict: bool = False, warn_only: bool = False) -> Any:
    return seed, strict, warn_only


def _closest_marker(node: Any, by_parent: dict[Any, pytest.Mark | None]) -> pytest.Mark | None:
    """``node.get_closest_marker(MARKER)``, with the parents' answers cached across items."""
    for mark in node.own_markers:
        if mark.name == MARKER:
            return mark  # type: ignore[no-any-return]
    parent = node.parent
    if parent is None:
        return None
    if parent not in by_parent:
        by_parent[parent] = _closest_marker(parent, by_parent)
    return by_parent[parent]


def _cwd_relative(config: pytest.Config, nodeid: str) -> str:
    path, sep, rest = nodeid.partition("::")
    invocation = config.invocation_params.dir
    if path and invocation != config.rootpath:
        path = os.path.relpath(config.rootpath / path, invocation)
    return path + sep + rest


class _Session:
    """The plugin's state and hooks for one pytest session (registered per config)."""

    def __init__(
        self, config: pytest.Config, root: _Root | None, leaks: str, *, announce: bool
    ) -> None:
        self.config = config
        self.root = root
        self.leaks = leaks
        self.announce = announce
        self._default_root: int | None = None
        self._runner: _Runner | None = None
        # The plans of tests whose scope has begun, by node id, until their teardown report.
        self.begun: dict[str, _Plan] = {}
        self.leak_warnings = 0

    # -- header, summary, xdist ------------------------------------------------------

    def header(self) -> str:
        if self.root is not None:
            seeds = (
                f"{SEED_OPTION}={self.root.seed} ({self.root.how}): every test runs in a "
                "scope seeded from it, and every test module is collected in one"
            )
        else:
            seeds = f"no {SEED_OPTION}: only tests marked {MARKER} run in scopes"
        return f"seedscope: {seeds}; leak checks: {self.leaks}"

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        # Installed and unused, nothing: other suites check their header lines.
        return self.header() if self.announce else None

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        # Called once per warning, not per test; on pytest-xdist's controller too.
        category = warning_message.category
        if isinstance(category, type) and issubclass(category, LeakWarning):
            self.leak_warnings += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        # Leaks made errors (--seedscope-leaks=error) fail their test's teardown.
        errors = sum(
            _RESTORED in getattr(report, "longreprtext", "")
            for report in terminalreporter.stats.get("error", [])
        )
        found = self.leak_warnings + errors
        if found:
            terminalreporter.write_line(self.header())
            terminalreporter.write_line(
                f"seedscope: {found} leak report(s) above: tests or test modules that left "
                "settings, environment variables or random state changed"
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        root = self.root
        node.workerinput[_WORKER_KEY] = None if root is None else (root.seed, root.how)

    # -- collection -----------------------------------------------------------------

    def _root_for_markers(self) -> int:
        if self.root is not None:
            return self.root.seed
        if self._default_root is None:
            try:
                self._default_root = seed_from_environment()
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._default_root

    def _plan(self, item: pytest.Item, marker: pytest.Mark | None) -> _Plan | None:
        if marker is None and self.root is None:
            return None
        seed: object = None
        strict = warn_only = False
        if marker is not None:
            try:
                seed, strict, warn_only = _marker_arguments(*marker.args, **marker.kwargs)
            except TypeError as exc:
                raise pytest.UsageError(
                    f"@pytest.mark.{MARKER} on {item.nodeid}: {exc}; it takes "
                    "(seed=None, strict=False, warn_only=False)"
                ) from None
        derived_from: int | None = None
        try:
            if seed is None:
                derived_from = self._root_for_markers()
                seed = derive_seed(derived_from, item.nodeid)
            scope = deterministic(validate_seed(seed), strict=strict, warn_only=warn_only)
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} on {item.nodeid}: {exc}") from None
        assert scope.seed is not None
        return _Plan(scope, scope.seed, derived_from)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        scoped = False
        markers: dict[Any, pytest.Mark | None] = {}
        try:
            for item in items:
                plan = self._plan(item, _closest_marker(item, markers))
                if plan is not None:
                    item.stash[_PLAN] = plan
                    scoped = True
        except pytest.UsageError as error:
            if not hasattr(self.config, "workerinput"):
                raise
            # An xdist worker cannot end the run with a usage error (the controller
            # reports a crash and no message): fail the collection instead.
            report = pytest.CollectReport("", "failed", f"ERROR: {error}", [])
            self.config.hook.pytest_collectreport(report=report)
            items.clear()
            return
        manager = self.config.pluginmanager
        if (scoped or self.leaks != "off") and self._runner is None:
            self._runner = _Runner(self)
            manager.register(self._runner, "seedscope-runner")
        if scoped and not manager.has_plugin("seedscope-reports"):
            manager.register(_Reports(self), "seedscope-reports")

    def rerun_line(self, nodeid: str, plan: _Plan) -> str:
        command = ["pytest", _cwd_relative(self.config, nodeid), "-p", "seedscope"]
        if plan.derived_from is None:
            origin = f"from @pytest.mark.{MARKER}"
        else:
            origin = f"derived from {SEED_OPTION}={plan.derived_from} and the node id"
            command.append(f"{SEED_OPTION}={plan.derived_from}")
        return (
            f"this test ran in a scope with seed {plan.seed} ({origin})\n"
            f"seedscope: reproduce with: {shlex.join(command)}"
        )


# -- collecting test modules -------------------------------------------------------------


def _collection_sources() -> tuple[Source, ...]:
    """The random sources: collection scopes leave settings a module makes at import alone."""
    return tuple(
        source
        for source in default_sources()
        if not isinstance(source, (TorchFlags, EnvironmentVariables))
    )


class _Collection:
    """Collects each test module and class in a seeded scope (with N), or watches it (rng).

    Registered only with N given or leak checks set to ``rng``.
    """

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.rng = session.leaks == "rng"
        self._sources: tuple[Source, ...] | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        if not isinstance(collector, (pytest.Module, pytest.Class)):
            return (yield)
        root = self.session.root
        scope: Scope | None = None
        seed: int | None = None
        if root is not None:
            if self._sources is None:
                self._sources = _collection_sources()
            seed = derive_seed(root.seed, collector.nodeid)
            scope = deterministic(seed, sources=self._sources)
            scope.__enter__()
        before = _rng_states(randomly=False) if self.rng else None
        try:
            report = yield
        finally:
            after = _rng_states(randomly=False) if self.rng else None
            if scope is not None:
                scope.__exit__(None, None, None)
        changed = _rng_changes(before, after)
        if changed:
            _warn_collection(report, collector, changed, root, seed)
        return report


def _warn_collection(
    report: pytest.CollectReport,
    collector: pytest.Collector,
    changed: list[str],
    root: _Root | None,
    seed: int | None,
) -> None:
    if root is None:
        what = "changed"
        why = (
            "it seeded or drew while its module was imported or its tests were generated: "
            "drawn values differ from run to run and seeding shifts the streams of everything "
            f"collected and run after it; with {SEED_OPTION} each test module is collected "
            "in a seeded scope"
        )
    else:
        what = "drew from"
        why = (
            f"in its collection scope, seed {seed} derived from {SEED_OPTION}={root.seed} "
            "and its node id, and put back afterwards: what it drew depends on N"
        )
    message = (
        f"seedscope: {collector.nodeid} {what} global random state while being collected: "
        f"{', '.join(changed)} ({why})"
    )
    try:
        collector.warn(LeakWarning(message))
    except LeakWarning as error:  # warnings made errors: a collection error, not a crash
        report.outcome = "failed"
        report.longrepr = str(error)


# -- running tests ---------------------------------------------------------------------


class _Runner:
    """Per-test hooks, registered only when some test runs in a scope or leaks are checked."""

    def __init__(self, session: _Session) -> None:
        config = session.config
        self.session = session
        self.leaks = session.leaks
        self.rng = self.leaks == "rng"
        # Whether pytest-randomly reseeds random and numpy around every test phase.
        self.randomly = config.pluginmanager.has_plugin("randomly") and bool(
            getattr(config.option, "randomly_reset_seed", False)
        )
        self.item: pytest.Item | None = None  # the test begun and not yet ended
        self.run: _Run | None = None  # its run, when it runs in a scope
        # What the last test outside a scope left, and its parent: the next
        # test's baseline while nothing but pytest ran in between (see begin).
        self.chain: _Snapshot | None = None
        self.chain_parent: Any = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: FixtureDef[Any], request: SubRequest) -> None:
        if fixturedef.scope == "function":
            item = request.node
            if item is not self.item:
                self.begin(item)
        else:
            self.chain = None  # a wider fixture may change settings for its lifetime

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        if item is not self.item:
            self.begin(item)

    # -- begin / end ------------------------------------------------------------------

    def begin(self, item: pytest.Item) -> None:
        """Start the test's scope or leak watch: before its first function-scoped fixture."""
        self.item = item
        stash = item.stash
        # Not stash.get(): it raises and catches KeyError for every test outside a scope.
        plan = stash[_PLAN] if _PLAN in stash else None  # noqa: SIM401
        if plan is None:
            if self.leaks == "off":
                return
            # The last test's end read the settings; if this test has the same
            # parent, pytest tore down and set up nothing between the two but
            # function-scoped fixtures (a wider fixture clears the chain), so
            # that read is this test's baseline: one read per test, not two.
            baseline = self.chain
            if baseline is None or item.parent is not self.chain_parent:
                baseline = _snapshot(self.rng, self.randomly)
            self.chain = None
            item.addfinalizer(functools.partial(self.end_leak_watch, item, baseline))
            return
        self.chain = None
        environ = _read_tool_environ() if self.leaks != "off" else None
        run = _Run(plan, plan.scope.__enter__(), environ)
        self.run = run
        self.session.begun[item.nodeid] = plan
        item.addfinalizer(functools.partial(self.end_scope, item, run))
        if self.randomly:
            # pytest-randomly reseeds random and numpy before each test phase:
            # inside the scope, that would replace the scope's streams.
            item.config.option.randomly_reset_seed = False
            run.randomly = True
        if "hypothesis" in sys.modules:
            run.hypothesis = _seed_hypothesis(item, plan.seed)

    def end_scope(self, item: pytest.Item, run: _Run) -> None:
        self.item = self.run = None
        if run.randomly:
            item.config.option.randomly_reset_seed = True
        if run.hypothesis is not None:
            function, seed, settings = run.hypothesis
            function._hypothesis_internal_use_seed = seed
            function._hypothesis_internal_use_settings = settings
        left: list[str] = []
        # live_stack(), not current_scope(): that passes over relaxed() entries.
        while (stack := live_stack()) and (top := stack[-1]) is not run.active:
            left.append(repr(top.scope))
            top.scope.__exit__(None, None, None)
        run.plan.scope.__exit__(None, None, None)
        messages: list[str] = []
        if left:
            messages.append(
                f"{item.nodeid} left scope(s) {', '.join(left)} active at its end; "
                "seedscope exited them"
            )
        # The scope put back what it manages; other tools' variables are checked here.
        changes = (
            []
            if run.environ is None
            else _environ_changes(_TOOL_VARIABLES, run.environ, _read_tool_environ())
        )
        if changes:
            _restore_environ(changes)
            messages.append(
                f"{item.nodeid} left environment variables changed: "
                f"{'; '.join(_describe(changes))} {_RESTORED}"
            )
        if left or (changes and self.leaks == "error"):
            pytest.fail("seedscope: " + "\nseedscope: ".join(messages), pytrace=False)
        if changes:
            item.warn(LeakWarning("seedscope: " + messages[-1]))

    def end_leak_watch(self, item: pytest.Item, before: _Snapshot) -> None:
        self.item = None
        after = _snapshot(before.rng is not None, self.randomly)
        if after.flags == before.flags and after.environ == before.environ and after.rng is None:
            self.chain, self.chain_parent = after, item.parent
            return
        settings = _settings_changes(before.flags, after.flags)
        environ = _environ_changes(_LEAK_VARIABLES, before.environ, after.environ)
        rng = _rng_changes(before.rng, after.rng)
        messages = []
        if settings or environ:
            if settings:
                _FLAGS.restore(before.flags)
            _restore_environ(environ)
            messages.append(
                f"{item.nodeid} left determinism settings changed: "
                f"{'; '.join([*settings, *_describe(environ)])} {_RESTORED}"
            )
        else:  # nothing put back: what the test left is the next one's baseline
            self.chain, self.chain_parent = after, item.parent
        if rng:
            messages.append(
                f"{item.nodeid} left global random state changed: {', '.join(rng)} "
                "(it seeded or drew outside a scope; use @pytest.mark.deterministic, "
                "seedscope.deterministic() or seedscope.isolated())"
            )
        if not messages:
            return
        message = "seedscope: " + "\nseedscope: ".join(messages)
        if self.leaks == "error" and (settings or environ):
            pytest.fail(message, pytrace=False)
        item.warn(LeakWarning(message))


class _Reports:
    """Adds the reproduce line to failure reports; registered only when tests run in scopes."""

    def __init__(self, session: _Session) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Before the reporters (terminal, junitxml, xdist's) read the report.
        if report.failed:
            plan = self.session.begun.get(report.nodeid)
            if plan is not None:
                note = self.session.rerun_line(report.nodeid, plan)
                longrepr: Any = report.longrepr
                if hasattr(longrepr, "addsection"):
                    longrepr.addsection("seedscope", note)
                else:
                    report.sections.append(("seedscope", note))
        if report.when == "teardown":
            self.session.begun.pop(report.nodeid, None)


def _seed_hypothesis(item: pytest.Item, seed: int) -> tuple[Any, Any, Any] | None:
    """Seed a Hypothesis test with the scope's seed, as ``@hypothesis.seed(seed)`` would.

    Left alone: tests with their own ``@seed``, ``derandomize=True``, or a run
    with ``--hypothesis-seed``. Returns what to put back afterwards.
    """
    obj = getattr(item, "obj", None)
    function = getattr(obj, "__func__", obj)
    if not getattr(function, "is_hypothesis_test", False):
        return None
    core = sys.modules.get("hypothesis.core")
    if core is None or getattr(core, "global_force_seed", None) is not None:
        return None
    old_seed = getattr(function, "_hypothesis_internal_use_seed", None)
    old_settings = getattr(function, "_hypothesis_internal_use_settings", None)
    if old_seed is not None or getattr(old_settings, "derandomize", False):
        return None
    sys.modules["hypothesis"].seed(seed)(function)  # also turns the example database off
    return function, old_seed, old_settings


# -- leak detection --------------------------------------------------------------------
#
# Reads the settings a scope manages (TorchFlags) and the environment
# variables below, once per test: a test's baseline is what the test before
# it left (see _Runner.begin). A leak is put back by the same restore a
# scope uses.

_FLAGS = TorchFlags()

# Seed and determinism variables that common tools read or write, besides
# seedscope's own (MANAGED, which a scope saves and restores itself): a test
# that leaves one set changes the tests after it, and its child processes.
_TOOL_VARIABLES = (
    "PL_GLOBAL_SEED",  # Lightning's seed_everything writes it; reset_seed() reads it
    "PL_SEED_WORKERS",  # seed_everything(workers=...): whether DataLoader workers are seeded
    "TF_DETERMINISTIC_OPS",  # TensorFlow: deterministic GPU ops
    "TF_CUDNN_DETERMINISTIC",  # TensorFlow: deterministic cuDNN algorithms
    "TF_CUDNN_USE_AUTOTUNE",  # TensorFlow: cuDNN autotuning, which picks per run
    "TF_ENABLE_ONEDNN_OPTS",  # TensorFlow: oneDNN kernels, with other rounding
    "NVIDIA_TF32_OVERRIDE",  # cuBLAS and cuDNN: 0 turns TF32 off in every library
    "CUDA_LAUNCH_BLOCKING",  # CUDA; set by transformers' enable_full_determinism
    "FLASH_ATTENTION_DETERMINISTIC",  # transformers' enable_full_determinism
    "ASCEND_LAUNCH_BLOCKING",  # enable_full_determinism, for Ascend NPUs
    "HCCL_DETERMINISTIC",  # enable_full_determinism: Ascend's collectives
    "NVTE_ALLOW_NONDETERMINISTIC_ALGO",  # NVIDIA Transformer Engine (Megatron)
)
# Every variable the leak check compares, in the order of its reports.
_LEAK_VARIABLES = (*MANAGED, *_TOOL_VARIABLES)
_read_environ = raw_reader(_LEAK_VARIABLES)
_read_tool_environ = raw_reader(_TOOL_VARIABLES)

_FLAG_NAMES = (
    "torch.backends.cudnn.deterministic",
    "torch.backends.cudnn.benchmark",
    "torch.use_deterministic_algorithms",
    "torch.use_deterministic_algorithms(warn_only)",
    "torch.utils.deterministic.fill_uninitialized_memory",
    "torch.backends.cuda.matmul.allow_tf32",
    "torch.backends.cudnn.allow_tf32",
    "torch.get_float32_matmul_precision()",
)
_PRECISION_NODE_NAMES = {
    ("generic", "all"): "torch.backends.fp32_precision",
    ("cuda", "all"): "torch.backends.cudnn.fp32_precision",
    ("mkldnn", "all"): "torch.backends.mkldnn.fp32_precision",
    ("cuda", "matmul"): "torch.backends.cuda.matmul.fp32_precision",
    ("cuda", "conv"): "torch.backends.cudnn.conv.fp32_precision",
    ("cuda", "rnn"): "torch.backends.cudnn.rnn.fp32_precision",
    ("mkldnn", "matmul"): "torch.backends.mkldnn.matmul.fp32_precision",
    ("mkldnn", "conv"): "torch.backends.mkldnn.conv.fp32_precision",
    ("mkldnn", "rnn"): "torch.backends.mkldnn.rnn.fp32_precision",
}


class _Snapshot(NamedTuple):
    flags: Any  # TorchFlags' capture; None: torch not imported
    environ: tuple[Any, ...]  # _LEAK_VARIABLES, as raw_reader reads them
    rng: tuple[tuple[str, Any], ...] | None  # (name, state) per generator; None: not checked


def _read_flags() -> Any:
    return _FLAGS.capture() if _FLAGS.available() else None


def _flatten(settings: Any) -> tuple[Any, ...]:
    # fallback_random: None is inductor's default, False.
    return (*settings[:5], *settings.precision, bool(settings.fallback_random))


def _snapshot(rng: bool, randomly: bool) -> _Snapshot:
    return _Snapshot(_read_flags(), _read_environ(), _rng_states(randomly) if rng else None)


def _rng_states(randomly: bool) -> tuple[tuple[str, Any], ...]:
    states: list[tuple[str, Any]] = []
    # pytest-randomly reseeds random and numpy before and after every test, so
    # their state never carries over from one test to the next: not checked.
    if not randomly:
        import random

        states.append(("random", random.getstate()))
        np_random = sys.modules.get("numpy.random")
        if np_random is not None:
            state = np_random.get_state(legacy=True)
            if isinstance(state, tuple):  # MT19937: (name, key, pos, has_gauss, gauss)
                state = (state[1].tobytes(), *state[2:])
            else:  # another bit generator: a dict that may hold arrays
                state = pickle.dumps(state)
            states.append(("numpy.random", state))
    torch = sys.modules.get("torch")
    if torch is not None:
        states.append(("torch", torch.default_generator.get_state()))
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_initialized():
            for index, generator in enumerate(cuda.default_generators):
                states.append((f"torch.cuda:{index}", generator.get_state()))
    return tuple(states)


def _same_state(old: Any, new: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(old, torch.Tensor):
        return bool(torch.equal(old, new))
    return bool(old == new)


def _show(value: object) -> str:
    return "unset" if value is None else repr(value)


_Change = tuple[str, str | None, str | None]  # a variable, its old value, its new one


def _environ_changes(
    names: tuple[str, ...], before: tuple[Any, ...], after: tuple[Any, ...]
) -> list[_Change]:
    """The variables of ``names`` whose values differ between two raw reads."""
    if after == before:
        return []
    changes = []
    for name, old, new in zip(names, before, after, strict=True):
        old, new = decode(old), decode(new)
        if old != new:
            changes.append((name, old, new))
    return changes


def _describe(changes: list[_Change]) -> list[str]:
    return [f"{name}: {_show(old)} -> {_show(new)}" for name, old, new in changes]


def _restore_environ(changes: list[_Change]) -> None:
    for name, old, _ in changes:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _settings_changes(before: Any, after: Any) -> list[str]:
    """``name: old -> new`` for each torch setting that differs between two captures."""
    if before is None or after is None or before == after:
        return []
    from .sources.flags import _precision_nodes

    precision = (
        _PRECISION_NODE_NAMES.get(node, f"fp32_precision{node}") for node in _precision_nodes()
    )
    names = (*_FLAG_NAMES, *precision, "torch._inductor.config.fallback_random")
    changes: list[str] = []
    for name, old, new in zip(names, _flatten(before), _flatten(after), strict=False):
        if old != new:
            # None: torch refused to read a legacy TF32 setting after mixed settings.
            shown = ["<unreadable>" if value is None else repr(value) for value in (old, new)]
            changes.append(f"{name}: {shown[0]} -> {shown[1]}")
    return changes


def _rng_changes(
    before: tuple[tuple[str, Any], ...] | None, after: tuple[tuple[str, Any], ...] | None
) -> list[str]:
    if before is None or after is None:
        return []
    old = dict(before)
    return [name for name, state in after if name in old and not _same_state(old[name], state)]


# -- fixture ---------------------------------------------------------------------------


@pytest.fixture
def seedscope_scope(request: pytest.FixtureRequest) -> ActiveScope | None:
    """The test's active seedscope scope (``.seed`` is its seed), or None outside one."""
    runner = request.config.pluginmanager.get_plugin("seedscope-runner")
    if not isinstance(runner, _Runner) or runner.item is not request.node or runner.run is None:
        return None
    return runner.run.active
