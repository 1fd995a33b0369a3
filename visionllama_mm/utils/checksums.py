"""sha256 fingerprints that data files record of what made them (a file, a config, a model)."""
import hashlib
import json

__all__ = ['file_sha256', 'json_fingerprint', 'weights_checksum']


def file_sha256(path: str, block: int = 1 << 20) -> str:
    """sha256 (all 64 hex digits) of a file's bytes, read in ``block``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for piece in iter(lambda: f.read(block), b''):
            digest.update(piece)
    return digest.hexdigest()


def json_fingerprint(obj) -> str:
    """sha256 (16 hex digits) of ``obj`` as sorted JSON (non-JSON values by ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_checksum(module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes, values), first 16 hex digits:
    the fingerprint data files record of the frozen model that wrote them (a tokenizer, a VAE)."""
    import torch
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
