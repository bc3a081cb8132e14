"""The root of errors raised for bad artifact references and registry problems."""

from __future__ import annotations

from nemotron.errors import NemotronError


class ArtifactError(NemotronError):
    """An artifact could not be found, parsed or published; the message says why and what exists."""


class ArtifactNotFoundError(ArtifactError):
    """A reference names no artifact version in the registry.

    `ref` is the reference as given (name:latest, name:v3, name:alias) and `name` its artifact name;
    `key`, when set, is the config key that holds the reference, and `fix` says how to make the
    reference resolve (the CLI names the command that publishes the artifact).
    """

    def __init__(self, problem: str, *, ref: str, key: str | None = None, fix: str | None = None) -> None:
        self.problem, self.ref, self.key, self.fix = problem, ref, key, fix
        self.name = ref.partition(":")[0].strip()
        where = f"config key '{key}': " if key else ""
        super().__init__(f"{where}{problem}" + (f"; {fix}" if fix else ""))

    def at_key(self, key: str, fix: str | None = None) -> ArtifactNotFoundError:
        """The same problem, as the value of config key `key`; `fix` (default: a generic one) says what to do."""
        fix = fix or f"publish it first, or set {key}=NAME:VERSION to an artifact that exists (nemotron artifacts list)"
        return ArtifactNotFoundError(self.problem, ref=self.ref, key=key, fix=fix)

    def __reduce__(self) -> tuple[object, ...]:  # picklable across process pools despite keyword arguments
        return (_rebuild_not_found, (self.problem, self.ref, self.key, self.fix))


def _rebuild_not_found(problem: str, ref: str, key: str | None, fix: str | None) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(problem, ref=ref, key=key, fix=fix)
