"""The run directory as a small database: a lock, a manifest, checksummed checkpoints, atomic files.

A run folder (``trialsim run --out DIR``) holds

* ``.trialsim.lock``: held (``filelock``, an OS lock released when the process dies) for the whole
  run, results included, so a second run into the same folder is refused while the first works, and
  the lock of a killed run is simply taken over;
* ``manifest.json``: written before anything else: the run's identity (trialsim version, seed, drawn
  or given, trials, block size, and each scenario's id and config hash) and one entry per session
  (a resume adds one). A folder whose manifest names another run is refused, naming the field;
* ``checkpoints/<scenario>.jsonl``: a header line, then one line per finished block, each with a
  checksum of its content. On resume every line is checked (checksum, block index, trials, every
  key, ``0 <= rejects <= valid <= trials``); a damaged line is never trusted: its block is
  simulated again, with a warning;
* the outputs, each written to a temporary file and renamed into place (:func:`atomic_write`), so a
  kill or a full disk never leaves a truncated file, and a rewritten checkpoint replaces the old one
  only once it is complete.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import tomllib
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trialsim.config.loader import ConfigError, flatten, to_raw
from trialsim.config.schema import Scenario
from trialsim.files import Ledger, canonical_json, replace_file
from trialsim.scenarios import ScenarioSpec, safe_name
from trialsim.summarise import BlockSummary
from trialsim.version import __version__

MANIFEST = "manifest.json"
LOCK = ".trialsim.lock"
OWNER = ".trialsim.owner.json"
FORMAT = 1
CHECKPOINTS = "checkpoints"
CHECKPOINTS_WITH_TRIALS = "checkpoints_with_trials"  # a run keeping its trials resumes only from its own blocks
IDENTITY = ("format", "trialsim", "seed", "n_sims", "block_size", "scenarios")


class _ScenarioEntry(BaseModel):
    model_config = ConfigDict(strict=True)
    id: str
    config_hash: str


class _Session(BaseModel):
    model_config = ConfigDict(extra="allow")
    started: str


class _Manifest(BaseModel):
    """The types a manifest's fields must have before any of them is used (others are kept as they are)."""
    model_config = ConfigDict(strict=True, extra="allow")
    format: int
    trialsim: str
    seed: int = Field(ge=0)
    n_sims: int = Field(ge=1)
    block_size: int = Field(ge=1)
    scenarios: list[_ScenarioEntry]
    sessions: list[_Session] = []
# what an earlier trialsim run leaves in its folder; a folder holding these but no manifest is refused
EARLIER_OUTPUTS = ("power.csv", "power.json", "estimates.csv", "provenance.json", "scenarios", "trials", CHECKPOINTS,
                   CHECKPOINTS_WITH_TRIALS)


class RunDirError(ConfigError):
    """A run folder that cannot be used: locked by a running run, holding another run, damaged or not writable."""


# ----------------------------------------------------------------------------------------- files
def atomic_write(path: str | Path, content: str | bytes | Callable[[Path], Any], *, ledger: Ledger | None = None) -> Path:
    """:func:`trialsim.files.replace_file`, flushed to the disk, for a run folder's files: a failure is a
    :class:`RunDirError` saying that the finished blocks stay in the checkpoints. ``ledger``: records the file's
    checksum (a result file that readers check)."""
    try:
        if ledger is not None:
            return ledger.write(path, content, sync=True)
        return replace_file(path, content, sync=True)
    except OSError as exc:
        raise RunDirError(f"cannot write {str(path)!r}: {exc.strerror or exc} (a full disk or a read-only folder?); "
                          f"finished blocks stay in the run folder's checkpoints and resume on the next run") from None


def checksum(data: Any) -> str:
    """Checksum of a JSON value (sha256 of its canonical text, 16 hex digits)."""
    return hashlib.sha256(canonical_json(data)).hexdigest()[:16]


def scenario_hash(spec: ScenarioSpec | Scenario) -> str:
    """Hash of everything in a scenario (or a spec's) that changes its numbers except the ``[run]`` section.

    Seed, trials and block size are manifest fields of their own; the other run settings
    (workers, chunking, backend, scheduler, memory budget, flow engine) never change a number.
    """
    raw = to_raw(spec.scenario if isinstance(spec, ScenarioSpec) else spec)
    raw.pop("run", None)
    return hashlib.sha256(canonical_json(raw)).hexdigest()[:16]


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------ checkpoint
CHECKPOINT_FORMAT = 2  # 2: block lines' checksums cover the run's header (a checkpoint of format 1 is simulated again)


class Checkpoint:
    """One scenario's finished blocks: a JSON-lines file, a header then one checksummed line per block.

    Opening it checks every line; blocks of good lines are indexed by their place in the file and
    read back one at a time when the run folds them in (memory does not grow with the trials).
    Damaged lines are dropped (their blocks are simulated again, with a warning); the file is then
    rewritten through a temporary file and an atomic rename, so an interruption of the rewrite loses
    nothing.

    ``check(summary)`` returns why a stored block cannot be trusted (or None), given its index is in
    range; :meth:`BlockSummary.problem` does that.
    """

    def __init__(self, path: Path, header: dict, *, n_blocks: int, check: Callable[[BlockSummary], str | None]):
        self.path = Path(path)
        self.header = header
        self.n_blocks = n_blocks
        self.check = check
        self.index: dict[int, tuple[int, int]] = {}  # block -> (offset, length) of its line
        self.damaged: list[str] = []
        if self.path.exists():
            self._open_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, self._header_line())

    def _header_line(self) -> bytes:
        return json.dumps({"header": self.header, "sha": checksum(self.header)}, separators=(",", ":")).encode() + b"\n"

    def _line_sha(self, body: dict) -> str:
        """A block line's checksum: of its content and of this run's header (scenario, config hash, seed, trials,
        block size), so that a line copied from another run's checkpoint does not match here."""
        return checksum({"run": checksum(self.header), "block": body})

    def _parse(self, line: bytes) -> BlockSummary | str:
        """The line's block, or why it cannot be trusted."""
        try:
            data = json.loads(line.decode("utf-8"))
            body, sha = data["block"], data["sha"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError):  # (nested thousands deep)
            return "not a whole checkpoint line"
        try:
            matches = isinstance(body, dict) and self._line_sha(body) == sha
        except RecursionError:  # nested too deep to encode again (parsing it just fitted)
            return "not a whole checkpoint line"
        if not matches:
            return "checksum does not match its content and this run"
        try:
            block = BlockSummary.from_json(body)
        except TypeError:
            return "unexpected keys"
        if not isinstance(block.block, int) or not 0 <= block.block < self.n_blocks:
            return f"block index {block.block!r} out of range 0..{self.n_blocks - 1}"
        why = self.check(block)
        return block if why is None else f"block {block.block}: {why}"

    def _open_existing(self) -> None:
        rewrite = False
        with open(self.path, "rb") as fh:
            first = fh.readline()
            try:
                head = json.loads(first.decode("utf-8"))
                good_header = head["header"] == self.header and head["sha"] == checksum(head["header"])
            except (UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError):
                good_header = False
            if not good_header:
                warnings.warn(f"checkpoint {str(self.path)!r} has a damaged or foreign header: none of its blocks is "
                              f"trusted, they are simulated again", RuntimeWarning, stacklevel=4)
                self.damaged.append("header")
                atomic_write(self.path, self._header_line())
                return
            offset = len(first)
            kept: dict[int, bytes] = {}  # block -> digest of its line, to tell a repeated line from a conflicting one
            conflicting: set[int] = set()
            for line in fh:
                if not line.strip():  # an empty line holds no block: dropped by the rewrite, nothing lost
                    rewrite = True
                    offset += len(line)
                    continue
                found = self._parse(line)
                if not line.endswith(b"\n"):  # torn by an interruption: its block simply runs again
                    rewrite = True
                elif isinstance(found, str):
                    self.damaged.append(found)
                elif found.block in self.index or found.block in conflicting:
                    rewrite = True  # a block written twice: the same line is kept once, two different ones neither
                    if found.block not in conflicting and _digest(line) != kept[found.block]:
                        conflicting.add(found.block)
                        del self.index[found.block]
                        self.damaged.append(f"block {found.block}: two different lines")
                else:
                    self.index[found.block] = (offset, len(line))
                    kept[found.block] = _digest(line)
                offset += len(line)
        if self.damaged:
            warnings.warn(f"checkpoint {str(self.path)!r}: {len(self.damaged)} damaged line(s) not trusted "
                          f"(first: {self.damaged[0]}); those blocks are simulated again", RuntimeWarning, stacklevel=4)
        if rewrite or self.damaged:
            self._rewrite()

    def _rewrite(self) -> None:
        """Keep the header and the good lines only: a new file, renamed over the old one when complete."""
        index: dict[int, tuple[int, int]] = {}

        def write(tmp: Path) -> None:
            with open(self.path, "rb") as old, open(tmp, "wb") as new:
                new.write(self._header_line())
                for block, (offset, length) in sorted(self.index.items(), key=lambda kv: kv[1][0]):
                    old.seek(offset)
                    index[block] = (new.tell(), length)
                    new.write(old.read(length))

        atomic_write(self.path, write)
        self.index = index

    def load(self, block: int) -> BlockSummary:
        """Read a stored block back (checked again)."""
        offset, length = self.index[block]
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            found = self._parse(fh.read(length))
        if isinstance(found, str) or found.block != block:
            raise RunDirError(f"checkpoint {str(self.path)!r} changed while the run was reading it ({found}); run again")
        return found

    def append(self, blocks: Iterable[BlockSummary]) -> None:
        """Add finished blocks (flushed to disk before returning)."""
        with open(self.path, "ab") as fh:
            for block in blocks:
                body = block.to_json()
                line = json.dumps({"sha": self._line_sha(body), "block": body}, separators=(",", ":")).encode() + b"\n"
                self.index[block.block] = (fh.tell(), len(line))
                fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------- run folder
class RunDir:
    """A run folder, locked for as long as it is open (``with RunDir(folder) as rd: ...``).

    Opening refuses a folder that another run is writing into, that is a file or cannot be written,
    that holds an earlier run's outputs without a manifest, or whose manifest is damaged.
    :meth:`begin` then refuses a folder that holds another run, naming the field that differs.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest: dict | None = None
        self.seed_given: bool | None = None
        self.blocks_resumed = 0
        self.blocks_computed = 0
        self.damaged_lines = 0
        self._lock: FileLock | None = None

    # ------------------------------------------------------------------------ lock
    def __enter__(self) -> "RunDir":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        self._make_folder()
        lock = FileLock(self.folder / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirError(f"another trialsim run{self._owner()} is writing into {str(self.folder)!r}; wait for it to "
                              f"finish, or use another --out folder") from None
        except OSError as exc:
            raise RunDirError(f"cannot lock {str(self.folder)!r}: {exc.strerror or exc}") from None
        self._lock = lock
        try:
            atomic_write(self.folder / OWNER, json.dumps({"pid": os.getpid(), "host": platform.node(), "since": _now()}))
            self.manifest = self._read_manifest()
            if self.manifest is None:
                earlier = [name for name in EARLIER_OUTPUTS if (self.folder / name).exists()]
                if earlier:
                    raise RunDirError(
                        f"{str(self.folder)!r} holds files of an earlier run ({', '.join(earlier)}) but no {MANIFEST}, so "
                        f"they cannot be told apart from this run's; use another --out folder, or remove them")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock is not None:
            (self.folder / OWNER).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def _make_folder(self) -> None:
        f = self.folder
        if f.exists() and not f.is_dir():
            raise RunDirError(f"--out {str(f)!r} is a file, not a folder")
        try:
            f.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RunDirError(f"cannot make the folder {str(f)!r}: a part of its path is a file") from None
        except OSError as exc:
            raise RunDirError(f"cannot make the folder {str(f)!r}: {exc.strerror or exc}") from None
        if not os.access(f, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write into {str(f)!r}: permission denied (a read-only folder?)")

    def _owner(self) -> str:
        try:
            owner = json.loads((self.folder / OWNER).read_text())
            return f" (process {owner['pid']} on {owner['host']}, since {owner['since']})"
        except (OSError, ValueError, TypeError, KeyError):
            return ""

    def _read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or any(k not in manifest for k in IDENTITY):
                raise ValueError("not a trialsim run manifest of this version")
            try:
                _Manifest.model_validate(manifest)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ValueError(f"{where}: {first['msg']}") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{str(path)!r} is damaged ({exc}); the folder's run cannot be identified: use another "
                              f"--out folder, or delete this one to start afresh") from None
        return manifest

    # ------------------------------------------------------------------------ manifest
    def recorded_seed(self) -> int | None:
        """The seed of the run this folder holds (a drawn one included), or None for a new folder."""
        return None if self.manifest is None else int(self.manifest["seed"])

    def recorded_block_size(self) -> int | None:
        return None if self.manifest is None else int(self.manifest["block_size"])

    def begin(self, specs: Sequence[ScenarioSpec], *, seed: int, seed_given: bool, n_sims: int, block_size: int,
              block_size_chosen: bool) -> None:
        """Write the manifest (a new folder), or check that the folder holds this run and add a session."""
        identity = {"format": FORMAT, "trialsim": __version__, "seed": int(seed), "n_sims": int(n_sims),
                    "block_size": int(block_size),
                    "scenarios": [{"id": s.id, "config_hash": scenario_hash(s)} for s in specs]}
        old = self.manifest
        if old is not None:
            for key in IDENTITY:
                if old[key] != identity[key]:
                    why = _difference(key, old[key], identity[key], folder=self.folder, specs=specs)
                    raise RunDirError(f"{str(self.folder)!r} holds another run: {why}. "
                                      f"Use another --out folder, or delete this one to start afresh")
        manifest = {**identity, "seed_given": bool(seed_given) if old is None else old.get("seed_given", seed_given),
                    # a resumed run takes its recorded block size: it was chosen (or not) when the run began
                    "block_size_chosen": bool(block_size_chosen) if old is None else old.get("block_size_chosen",
                                                                                               block_size_chosen),
                    "status": "running",
                    "created": _now() if old is None else old.get("created"),
                    "sessions": [*(old or {}).get("sessions", []), {"started": _now(), "pid": os.getpid(), "host": platform.node()}]}
        self.seed_given = manifest["seed_given"]
        atomic_write(self.folder / MANIFEST, json.dumps(manifest, indent=1))
        self.manifest = manifest

    def checkpoint(self, spec: ScenarioSpec, *, n_blocks: int, keep_trials: bool,
                   check: Callable[[BlockSummary], str | None]) -> Checkpoint:
        """The checkpoint of one scenario of the run begun with :meth:`begin`."""
        m = self.manifest
        header = {"format": CHECKPOINT_FORMAT, "scenario": spec.id, "config_hash": scenario_hash(spec), "seed": m["seed"],
                  "n_sims": m["n_sims"], "block_size": m["block_size"]}
        folder = self.folder / (CHECKPOINTS_WITH_TRIALS if keep_trials else CHECKPOINTS)
        cp = Checkpoint(folder / f"{safe_name(spec.id)}.jsonl", header, n_blocks=n_blocks, check=check)
        self.blocks_resumed += len(cp.index)
        self.damaged_lines += len(cp.damaged)
        return cp

    def finish(self) -> None:
        """Mark the run complete (its outputs are written)."""
        m = dict(self.manifest)
        m["status"] = "complete"
        m["sessions"] = [*m["sessions"][:-1], {**m["sessions"][-1], "finished": _now(),
                                               "blocks_resumed": self.blocks_resumed,
                                               "blocks_computed": self.blocks_computed}]
        atomic_write(self.folder / MANIFEST, json.dumps(m, indent=1))
        self.manifest = m

    def provenance(self) -> dict[str, Any]:
        """What the provenance records about this folder: resumes, blocks taken from checkpoints."""
        sessions = (self.manifest or {}).get("sessions", [])
        return {"run_dir": str(self.folder), "sessions": len(sessions), "resumed": self.blocks_resumed > 0,
                "blocks_resumed": self.blocks_resumed, "blocks_computed": self.blocks_computed,
                "damaged_checkpoint_lines": self.damaged_lines,
                "first_started": sessions[0]["started"] if sessions else None}


def _difference(key: str, there: Any, here: Any, *, folder: Path | None = None,
                specs: Sequence[ScenarioSpec] = ()) -> str:
    names = {"trialsim": "trialsim version", "n_sims": "n_sims (trials per scenario)", "format": "manifest format"}
    if key != "scenarios":
        return f"its {names.get(key, key)} is {there}, this run's is {here}"
    ids_there, ids_here = [s["id"] for s in there], [s["id"] for s in here]
    if ids_there != ids_here:
        return f"its scenarios are {', '.join(ids_there)}; this run's are {', '.join(ids_here)}"
    changed = next(a for a, b in zip(there, here) if a != b)
    mine = next(b for b in here if b["id"] == changed["id"])
    keys = _changed_keys(folder, next((sp for sp in specs if sp.id == changed["id"]), None))
    return (f"its scenario {changed['id']!r} has another config (config hash {changed['config_hash']} there, "
            f"{mine['config_hash']} here{'; ' + keys if keys else ''})")


def _changed_keys(folder: Path | None, spec: ScenarioSpec | None, limit: int = 3) -> str:
    """The config keys in which ``spec`` differs from the scenario a finished run saved in ``folder`` ("[flow] is
    set there, not here"; "endpoints.x.effect is 0.5 there, 0.7 here"), when the folder holds it; "" otherwise."""
    if folder is None or spec is None:
        return ""
    path = folder / "scenarios" / f"{safe_name(spec.id)}.toml"
    try:
        there = flatten(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return ""
    here = flatten(to_raw(spec.scenario))
    keys = sorted(k for k in set(there) | set(here) if not k.startswith("run.") and there.get(k) != here.get(k))
    shown: list[str] = []
    for k in keys:
        lacking = here if k in there and k not in here else there if k in here and k not in there else None
        # a whole section on one side only is named once, by the section; a key missing within a section by itself
        section = _outermost_missing(k, lacking) if lacking is not None else None
        text = (f"[{section}] is {'set there, not here' if lacking is here else 'set here, not there'}"
                if section is not None and section != k else
                f"{k} is {_short(there.get(k, 'not set'))} there, {_short(here.get(k, 'not set'))} here")
        if text not in shown:
            shown.append(text)
    if not shown:
        return ""
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return "differs in " + "; ".join(shown[:limit]) + more


def _outermost_missing(key: str, side: dict[str, Any]) -> str:
    """The shortest prefix of ``key`` (a dotted path) of which ``side`` holds nothing at all."""
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if not any(k == prefix or k.startswith(prefix + ".") for k in side):
            return prefix
    return key


def _short(value: Any, width: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) or value != "not set" else value
    return text if len(text) <= width else text[:width - 3] + "..."
