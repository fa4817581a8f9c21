"""Planning a zoo job: every model of its source (a prefix or a manifest) as a ``ModelTask``, checked before
any work starts; and how files named in a spec resolve to storage."""

from __future__ import annotations

import os

from ..errors import InputError, naming_field
from ..schema import MODEL_SUFFIXES, FileDomainSpec, Manifest, ManifestSource, ModelTask, ZooJobSpec
from ..schema.specfile import parse_spec
from ..storage import LocalStorage, S3Storage, Storage, open_storage, safe_key
from ..storage.files import nearest_existing, probe_writable


def split_url(url: str) -> tuple[Storage, str]:
    """The storage holding ``url``'s parent and the file's key in it."""
    parent, _, name = url.rstrip("/").rpartition("/")
    return open_storage(parent or "."), name


def resolve_reference(reference: str, source_root: str) -> tuple[Storage, str]:
    """A file named in a spec: a full URL / absolute path, or a key relative to the job's source."""
    if "://" in reference or reference.startswith("/"):
        return split_url(reference)
    return open_storage(source_root), reference


def plan_tasks(spec: ZooJobSpec, spec_file: str | None = None) -> list[ModelTask]:
    """Every model of the job as a ``ModelTask``, sorted by key. Raises InputError for a missing or empty
    source or an output that is the source (naming ``spec_file``, default "job spec", and the field), an invalid
    manifest, or a key that would escape its prefix — before any work starts."""
    if isinstance(spec.source, ManifestSource):
        return _manifest_tasks(spec, spec.source.manifest)
    where = spec_file or "job spec"
    source = open_storage(spec.source)
    with naming_field(where, "output"):
        output_inside = _output_inside(source.url(), open_storage(spec.output).url())
    keys = [
        key
        for key in source.list_keys(unsafe=True)
        if key.lower().endswith(MODEL_SUFFIXES) and not (output_inside and key.startswith(output_inside + "/"))
    ]
    for key in keys:  # one rule for every backend: an unsafe name stops the job before any work, named
        try:
            safe_key(key)
        except InputError as error:
            raise InputError(repr(f"{source.url()}/{key}"), f"{error.reason}; rename the file") from None
    if not keys:
        raise InputError(where, f"field 'source': {spec.source}: no model files ({', '.join(MODEL_SUFFIXES)}) under "
                         "this prefix")
    return [ModelTask(source_root=spec.source, key=key, domain=spec.domain, spec=spec) for key in sorted(keys)]


def _output_inside(source: str, output: str) -> str | None:
    """The output prefix relative to the source when it lies inside it (its files are not models), given
    both as canonical storage URLs (local paths are compared as real paths: ``a/x/..`` and symlinks are the
    place they name); InputError when they are the same place."""
    source, output = (os.path.realpath(url) if "://" not in url else url.rstrip("/") for url in (source, output))
    if output == source:
        raise InputError(output, "is the job's source too; write the results elsewhere (their compressed models "
                         "would be read as new models on the next run)")
    return output[len(source) + 1:] if output.startswith(source + "/") else None


def _manifest_tasks(spec: ZooJobSpec, manifest_url: str) -> list[ModelTask]:
    storage, name = split_url(manifest_url)
    text = storage.get_bytes(name).decode("utf-8", errors="replace")
    manifest = parse_spec(manifest_url, text, Manifest)
    root = manifest.root or storage.url("").rstrip("/")
    for entry in manifest.models:
        safe_key(entry.key)
    return [
        ModelTask(source_root=root, key=entry.key, domain=entry.domain or spec.domain, spec=spec)
        for entry in sorted(manifest.models, key=lambda entry: entry.key)
    ]


def output_problem(output: str) -> str | None:
    """Why ``output`` cannot take a job's files; None when it can. Local: it, or a folder on its way, is not a
    directory, or its nearest existing folder refuses a temporary file (created and removed). S3: its bucket does
    not exist at the endpoint or these credentials cannot reach it (``S3Storage.bucket_problem``: one HEAD of the
    bucket), or they may not write and delete under its prefix (``S3Storage.write_problem``: a probe object put
    and deleted). Raises what an S3 call raises when the server stays unreachable
    (``StorageUnavailable``) or no client can be made (``InputError``)."""
    storage = open_storage(output)
    if isinstance(storage, S3Storage):
        return storage.bucket_problem() or storage.write_problem()
    if not isinstance(storage, LocalStorage):
        return None
    root = storage.root
    existing = nearest_existing(root)
    if not existing.is_dir():
        return (f"{root} exists and is not a directory" if existing == root
                else f"{root} cannot be created: {existing} is not a directory")
    try:
        probe_writable(existing)
    except OSError as error:
        return f"{root} cannot be written: {error.strerror or error}"
    return None


def check_output(output: str, spec_file: str) -> None:
    """Raise, on one line ``"<spec_file>: field 'output': <reason>"``, when ``output`` cannot take the job's files
    (``output_problem``: an InputError), or when checking it failed (the S3 server stays unreachable, no
    credentials: that error's own kind and exit code) — before any work starts."""
    with naming_field(spec_file, "output"):
        problem = output_problem(output)
    if problem:
        raise InputError(spec_file, f"field 'output': {problem}")


def check_inputs(spec: ZooJobSpec, tasks: list[ModelTask], spec_file: str | None = None) -> None:
    """Raise InputError, one line naming the spec file (``spec_file``) and the field, when ``output`` cannot
    take the job's files (``output_problem``: a local folder that cannot be written, an S3 output that does not exist
    or that these credentials cannot reach or write), or the spec's data file or its domain file does not exist where the tasks
    would read it (a relative key from each task's source root, as ``resolve_reference`` resolves it): a bad spec,
    refused before any model is dispatched rather than failing every model. A manifest entry's own domain file is
    that model's input: a missing one fails that model alone."""
    where = spec_file or "job spec"
    check_output(spec.output, where)
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        named = [("data", spec.data)] if spec.data is not None else []
        if isinstance(task.domain, FileDomainSpec) and task.domain == spec.domain:
            named.append(("domain.file", task.domain.file))
        for field, reference in named:
            if (reference, task.source_root) not in seen:
                seen.add((reference, task.source_root))
                _check_exists(reference, task.source_root, where, field)


def _check_exists(reference: str, source_root: str, source: str, field: str) -> None:
    absolute = "://" in reference or reference.startswith("/")
    relative = "" if absolute else " (a relative key is read from the job's source)"
    try:
        storage, key = resolve_reference(reference, source_root)
        found = storage.exists(key)
    except InputError as error:  # e.g. a key that would leave its prefix
        raise InputError(source, f"field '{field}': {error}") from None
    if not found:
        raise InputError(source, f"field '{field}': {storage.url(key)} does not exist{relative}")
