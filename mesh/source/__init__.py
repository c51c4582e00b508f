"""Reading user input: YAML with positions, the generic decoder, and the kubectl-like loader."""

from mesh.source.load import LoadResult, load_paths, load_text, yaml_files

__all__ = ["LoadResult", "load_paths", "load_text", "yaml_files"]
