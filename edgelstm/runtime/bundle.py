"""Open a bundle folder: read its manifest and verify every file's hash before anything is parsed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgelstm.errors import BundleError
from edgelstm.fsutil import sha256_file
from edgelstm.spec import MANIFEST_NAME, Artifact, Backend, Manifest, Precision, Role


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest

    def file(self, artifact: Artifact, index: int = 0) -> Path:
        return self.path / artifact.files[index].path

    def find(self, role: Role, backend: Backend, precision: Precision) -> Artifact:
        art = self.manifest.artifact(role, backend, precision)
        if art is None:
            have = ", ".join(a.key for a in self.manifest.artifacts) or "none"
            raise BundleError(f"the bundle has no {role} model for {backend} {precision}", path=self.path,
                              expected=f"one of the artefacts it holds ({have})",
                              fix=_fix_for(backend, precision))
        return art


def _fix_for(backend: Backend, precision: Precision) -> str:
    if precision == Precision.INT8:
        return "quantize it first: `edgelstm quantize BUNDLE --calib-data D`, or choose --precision fp32"
    if backend == Backend.OPENVINO:
        return "re-export with `--format onnx,openvino`, or choose --backend onnxruntime"
    return "re-export the bundle with `edgelstm export`"


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Read ``path/manifest.json`` and check every artefact file against its SHA-256.

    Hashes are checked before any model file is parsed, so a tampered or truncated model
    never reaches onnxruntime or OpenVINO.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError("no such bundle folder", expected="a folder written by `edgelstm export --out`",
                          fix="check the path", path=path)
    if not path.is_dir():
        raise BundleError("is a file, not a bundle folder", expected="the folder holding manifest.json",
                          fix="pass the folder that `edgelstm export --out` wrote", path=path)
    manifest = Manifest.read(path / MANIFEST_NAME)
    bundle = Bundle(path, manifest)
    if verify:
        for art in manifest.artifacts:
            for fh in art.files:
                verify_file(path, fh.path, fh.sha256, fh.bytes)
    return bundle


def verify_file(root: Path, rel: str, sha256: str, size: int) -> None:
    f = (root / rel)
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise BundleError(f"the manifest names a file outside the bundle ('{rel}')", path=root / MANIFEST_NAME,
                          expected="paths relative to the bundle folder", fix="re-export the bundle")
    if not f.is_file():
        raise BundleError("is missing from the bundle", expected="every file the manifest lists",
                          fix="copy the whole bundle folder again, or re-export it", path=f)
    actual_size = f.stat().st_size
    if actual_size != size:
        raise BundleError(f"is {actual_size} bytes but the manifest says {size} (truncated or replaced)",
                          fix="copy the bundle again or re-export it; do not edit files inside a bundle", path=f)
    digest = sha256_file(f)
    if digest != sha256:
        raise BundleError(f"SHA-256 {digest[:12]}… does not match the manifest's {sha256[:12]}… (modified)",
                          fix="copy the bundle again or re-export it; do not edit files inside a bundle", path=f)
