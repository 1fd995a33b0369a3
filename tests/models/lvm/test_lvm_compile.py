"""LVM and its VQGAN tokenizer under ``torch.compile``: no graph break in the training forward
(both loss normalisations), the tokenizer's ``encode`` and its training loss; no recompilation
over fixed-shape training steps; KV-cache generation with a compiled decoder compiles the prompt
and one decoding step, reused at every position, and samples the same tokens as eager."""
import torch
from torch._dynamo.testing import CompileCounter

import visionllama_mm  # noqa: F401
from visionllama_mm.models.lvm import LVM
from visionllama_mm.models.lvm.vqgan import VQGANAutoEncoder, VQGANTokenizer
from ...compile_checks import assert_no_graph_breaks, compiled_frames

TINY = dict(embed_dims=32, hidden_dims=64, num_layers=2, num_heads=2)
TOKENIZER = dict(hidden_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, z_channels=16,
                 quantized_embed_dim=16, num_embeddings=32, resolution=16)


def _lvm(**kwargs):
    torch.manual_seed(0)
    return LVM(backbone=dict(type='LLaMADecoder', arch=TINY), **kwargs)


def _windows(seed, b=2, n=17):
    return torch.randint(0, 8192, (b, n), generator=torch.Generator().manual_seed(seed))


def test_training_forward_has_no_graph_break():
    """Token windows (both loss normalisations, with the accuracy) and image sentences
    tokenized on the fly by the frozen tokenizer (BOS/EOS added)."""
    for kwargs in (dict(log_accuracy=True), dict(loss_norm='row')):
        m = _lvm(**kwargs).train()
        assert_no_graph_breaks(lambda ids: m(ids, mode='loss')['loss'], _windows(0))
    m = LVM(backbone=dict(type='LLaMADecoder', vocab_size=132, arch=TINY),
            tokenizer=dict(type='VQGANTokenizer', arch=TOKENIZER), num_codes=32, bos_id=32,
            eos_id=33, pad_id=34).train()
    assert_no_graph_breaks(lambda x: m(x, mode='loss')['loss'], torch.rand(2, 3, 3, 16, 16))


def test_training_steps_do_not_recompile():
    m = _lvm(loss_norm='row').train()
    frames = compiled_frames(lambda ids: m(ids, mode='loss')['loss'],
                             [(_windows(s), ) for s in range(3)], backward=True)
    assert frames == [1, 1, 1]


def test_compiled_generation_reuses_one_decoding_step():
    """The decoder compiled by dynamo (its graphs run by eager kernels, not inductor's, whose C++
    builds take a minute here): the prompt call and one decoding step, the same graph at every
    position, and the same greedy and seeded tokens as the eager decoder."""
    m = _lvm().eval()
    prompt = _windows(1, n=12)
    greedy = m.generate(prompt, 12, temperature=0)
    sampled = m.generate(prompt, 12, generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    counter = CompileCounter()
    m.backbone.compile(backend=counter)
    try:
        assert torch.equal(m.generate(prompt, 12, temperature=0), greedy)
        # the prompt and one step (a graph per position would stop at the recompile limit, 8)
        assert counter.frame_count == 2
        assert torch.equal(m.generate(prompt, 12, generator=torch.Generator().manual_seed(0)),
                           sampled)
        assert counter.frame_count == 2
    finally:
        torch._dynamo.reset()


def test_vqgan_encode_and_training_loss_have_no_graph_break():
    torch.manual_seed(0)
    tok = VQGANTokenizer(arch=TOKENIZER)
    assert_no_graph_breaks(tok.encode, torch.rand(2, 3, 16, 16))
    for restart in (0, 10):  # restarting idle codes is tensor work in the same graph
        ae = VQGANAutoEncoder(tokenizer=dict(type='VQGANTokenizer', arch=TOKENIZER),
                              restart_idle_codes=restart).train()
        assert_no_graph_breaks(lambda x: sum(ae(x, mode='loss').values()),
                               torch.rand(2, 3, 16, 16))
