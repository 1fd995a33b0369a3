"""ContrastiveCLIP and its text tower: InfoNCE, the logit-scale clamp, Locked-Text Tuning, the
zero-shot classifier, the cross-rank gather (2 gloo processes) and clear errors; torch.compile
(one graph, no recompilation) and fp16 / bf16 autocast (fp32 logits and loss, activations of
hundreds)."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import visionllama_mm  # noqa: F401
from visionllama_mm.models.multimodal import CLIPTokenizer
from ...compile_checks import assert_one_graph_no_recompile

TINY_VISION = dict(type='ViTamin', img_size=32, arch=dict(
    stem_channels=8, channels=(8, 16), depths=(1, 1), embed_dims=32, num_layers=1, num_heads=2))


def tiny_text(**kw):
    return {**dict(type='CLIPTextTransformer', embed_dims=24, width=32, num_layers=2,
                   num_heads=2), **kw}


def build(**kw):
    cfg = dict(type='ContrastiveCLIP', vision_backbone=TINY_VISION, text_encoder=tiny_text(),
               context_length=16)
    cfg.update(kw)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


CAPTIONS = ['a photo of a cat.', 'a dog on grass.', 'two birds.', 'a red car.']


def samples(captions=CAPTIONS):
    tok = CLIPTokenizer(16)
    return [DataSample(text_tokens=tok(c)[0].numpy()) for c in captions]


def test_text_tower_pools_the_end_of_text_token_causally():
    model = build().eval()
    tokens = CLIPTokenizer(16)(['a photo of a cat.', 'a photo of a dog.'])
    out = model.text(tokens)
    assert out.shape == (2, 24)
    eot = tokens.argmax(-1)
    changed = tokens.clone()
    changed[0, eot[0] + 1] = 500  # after the end-of-text token: invisible to a causal tower
    torch.testing.assert_close(model.text(changed)[0], out[0])
    assert not torch.allclose(out[0], out[1])


def test_loss_is_symmetric_infonce_and_logit_scale_is_clamped():
    model = build().train()
    x = torch.randn(4, 3, 32, 32)
    ds = samples()
    with torch.no_grad():
        model.logit_scale.fill_(6.0)  # exp(6) = 403 > 100
    losses = model.loss(x, ds)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    assert losses['logit_scale'].item() == pytest.approx(100., rel=1e-5)
    img, txt = model.extract_image_feat(x), model.extract_text_feat(
        torch.stack([torch.as_tensor(d.text_tokens) for d in ds]))
    logits = 100. * img @ txt.t()
    labels = torch.arange(4)
    ref = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(losses['loss'], ref)
    losses['loss'].backward()
    assert model.visual_proj.weight.grad is not None and model.text.text_projection.grad is not None
    # raw captions are tokenized by the model; tensor mode gives unit vectors
    raw = [DataSample(text=c) for c in CAPTIONS]
    torch.testing.assert_close(model.loss(x, raw)['loss'], model.loss(x, ds)['loss'])
    feats = model(x, raw, mode='tensor')
    assert sorted(feats) == ['image_feat', 'text_feat']
    torch.testing.assert_close(feats['image_feat'].norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(feats['text_feat'].norm(dim=-1), torch.ones(4))


def test_locked_text_tower_stays_bit_identical_and_gets_no_gradient(tmp_path):
    source = build()
    with torch.no_grad():
        source.logit_scale.fill_(3.0)
    ckpt = str(tmp_path / 'clip.pth')
    torch.save({'state_dict': source.state_dict()}, ckpt)
    torch.manual_seed(1)
    model = MODELS.build(dict(type='ContrastiveCLIP', vision_backbone=TINY_VISION,
                              text_encoder=tiny_text(), context_length=16,
                              text_checkpoint=ckpt, lock_text=True))
    model.init_weights()
    text0 = {k: v.clone() for k, v in model.text.state_dict().items()}
    for k, v in source.text.state_dict().items():
        assert torch.equal(text0[k], v), k  # loaded from the checkpoint
    assert model.logit_scale.item() == 3.0
    visual0 = {k: v.clone() for k, v in model.visual.state_dict().items()}
    proj0 = model.visual_proj.weight.detach().clone()
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.2)))
    model.train()
    assert not model.text.training and model.visual.training
    for _ in range(3):
        loss = model.loss(torch.randn(4, 3, 32, 32), samples())['loss']
        wrapper.update_params(loss)
        assert all(p.grad is None for p in model.text.parameters())
    for k, v in model.text.state_dict().items():
        assert torch.equal(v, text0[k]), k
    assert not torch.equal(model.visual_proj.weight, proj0)
    assert sum(not torch.equal(v, visual0[k]) for k, v in model.visual.state_dict().items()) > 10
    assert model.logit_scale.item() != 3.0  # logit_scale stays trainable


def test_text_checkpoint_errors(tmp_path):
    wide = build(text_encoder=tiny_text(num_layers=1))
    ckpt = str(tmp_path / 'one_layer.pth')
    torch.save({'state_dict': wide.state_dict()}, ckpt)
    with pytest.raises(KeyError, match=r'text tower in .*one_layer.pth does not match the model: '
                                       r"missing \['blocks.1"):
        build(text_checkpoint=ckpt, lock_text=True)
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}}, str(tmp_path / 'cls.pth'))
    with pytest.raises(ValueError, match='has no CLIP text tower'):
        build(text_checkpoint=str(tmp_path / 'cls.pth'))
    with pytest.raises(ValueError, match='lock_text=True but no text_checkpoint'):
        build(lock_text=True)
    # a text projection of another shape is kept from the model (official --pretrained-text)
    other = build(text_encoder=tiny_text(), context_length=16)
    other_proj = build(text_encoder=tiny_text(embed_dims=12))
    torch.save({'state_dict': other_proj.state_dict()}, str(tmp_path / 'e12.pth'))
    model = build(text_checkpoint=str(tmp_path / 'e12.pth'))
    assert model.text.text_projection.shape == other.text.text_projection.shape
    torch.testing.assert_close(model.text.blocks[0].attn.qkv.weight,
                               other_proj.text.blocks[0].attn.qkv.weight)


def test_zero_shot_classifier_averages_normalised_prompts():
    classes, templates = ['cat', 'dog', 'car'], ['a photo of a {}.', 'a drawing of a {}.']
    model = build(zero_shot=dict(classes=classes, templates=templates)).eval()
    W = model.class_embeddings('cpu')
    tok = CLIPTokenizer(16)
    for i, c in enumerate(classes):
        feats = model.extract_text_feat(tok([t.format(c) for t in templates]))
        torch.testing.assert_close(W[:, i], F.normalize(feats.mean(0), dim=0))
    x = torch.randn(5, 3, 32, 32)
    out = model.predict(x)
    logits = model.scale() * model.extract_image_feat(x) @ W
    assert [int(d.pred_label) for d in out] == logits.argmax(-1).tolist()
    torch.testing.assert_close(torch.stack([d.pred_score for d in out]), logits.softmax(-1))
    model.train()
    model.loss(x[:4], samples())
    assert model._class_embeds is None  # a training step makes the classifier stale
    # the ImageNet protocol: mmpretrain's 1000 class names x the 80 OpenAI templates
    from visionllama_mm.models.multimodal import zero_shot_prompts
    names, prompts = zero_shot_prompts('imagenet', 'openai_imagenet')
    assert len(names) == 1000 and len(prompts) == 80
    assert prompts[0](names[0]) == 'a bad photo of a tench.'


def test_zero_shot_refuses_prompts_that_lose_the_class_name():
    """A template longer than the context length cuts every prompt before its class name: the
    classes tokenise identically, which is an error; a template cut after the name warns."""
    import io
    import logging

    from mmengine.logging import MMLogger
    long = 'a blurry low resolution photo taken at night in the rain of a small {}.'
    late = 'a photo of a {} taken at night in the rain with a very old and blurry camera.'
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model = build(zero_shot=dict(classes=['cat', 'dog', 'car'], templates=[long])).eval()
        with pytest.raises(ValueError, match=r"ContrastiveCLIP zero-shot: the prompts of classes "
                                             r"\['cat', 'dog', 'car'\] tokenise identically under "
                                             r"every template at context_length 16, so their "
                                             r"scores are equal and the accuracy meaningless\. "
                                             r"Templates: \['a blurry"):
            model.class_embeddings('cpu')
        model = build(zero_shot=dict(classes=['cat', 'dog'], templates=[late, 'a {}.'])).eval()
        W = model.class_embeddings('cpu')
    finally:
        logger.removeHandler(handler)
    out = buf.getvalue()
    assert (f'ContrastiveCLIP zero-shot: template {long!r} does not fit context_length 16: 3 of 3 '
            'class prompts are cut at the end') in out, out
    assert f'template {late!r} does not fit context_length 16: 2 of 2 class prompts' in out, out
    assert "template 'a {}.'" not in out
    assert W.shape == (24, 2)
    with pytest.raises(ValueError, match=r"classes \['dog', 'dog'\] tokenise identically"):
        build(zero_shot=dict(classes=['cat', 'dog', 'dog'], templates=['a {}.'])).class_embeddings(
            'cpu')


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='exactly one {}'):
        build(zero_shot=dict(classes=['a'], templates=['no placeholder']))
    with pytest.raises(ValueError, match='unknown zero_shot keys'):
        build(zero_shot=dict(classes=['a'], prompts=['{}']))
    with pytest.raises(ValueError, match='context_length 77 differs from context_length 16'):
        build(text_encoder=tiny_text(context_length=77))
    model = build()
    with pytest.raises(ValueError, match='loss mode needs captions'):
        model.loss(torch.randn(2, 3, 32, 32), [DataSample(), DataSample()])
    with pytest.raises(RuntimeError, match='predict mode needs zero_shot'):
        model.predict(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r'L <= 16'):
        model.text(torch.zeros(1, 20, dtype=torch.long))


def test_bf16_autocast_loss():
    model = build().train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model.loss(torch.randn(4, 3, 32, 32), samples())['loss']
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------ torch.compile
@pytest.mark.parametrize('lock_text', [False, True], ids=['clip', 'ltt'])
def test_loss_forward_is_one_graph_without_recompilation(lock_text):
    """The training loss forward of both towers (what ``compile=True`` compiles: tokens from the
    data samples, image and text towers, the logit-scale clamp, InfoNCE), with the text tower
    trained or locked (LTT: run without autograd, in eval mode), traces into one graph with no
    break, and three steps of fresh same-shape batches compile it once."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ContrastiveCLIP', vision_backbone=TINY_VISION,
                              text_encoder=tiny_text(), context_length=16,
                              lock_text=lock_text)).train()  # LTT's checkpoint not needed here
    ds = samples()

    def loss(x):
        return model(x, ds, mode='loss')['loss']

    assert_one_graph_no_recompile(loss, [(torch.randn(4, 3, 32, 32), ) for _ in range(3)],
                                  backward=True)
    assert all(p.grad is None for p in model.text.parameters()) == lock_text


# --------------------------------------------------------------------------- mixed precision
def _loud(model):
    """Activations of hundreds in both towers, as trained models reach: the image tower's
    LayerNorms scale by 20 (as in the ViTamin tests), the token and position embeddings are of
    hundreds."""
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            if name.endswith('.weight') and ('norm' in name or '.ln' in name) \
                    and not name.startswith('fc_norm'):
                p.fill_(20.)
        model.text.token_embedding.weight.mul_(300 / model.text.token_embedding.weight.std())
        model.text.positional_embedding.mul_(100 / model.text.positional_embedding.std())
    return model


def test_logits_and_loss_are_fp32_under_fp16_autocast():
    """With exp(logit_scale) = 100 (the clamp, where trained CLIP models sit) the logits
    ``100 * cos`` need more than fp16's 11 bits (an fp16 logit near 100 is a multiple of
    0.0625). Under fp16 autocast the features are normalised in fp32 and the logits and the
    cross-entropy are computed in fp32: the loss equals the fp64 loss of the same features, while
    the same product under autocast would be an fp16 matmul."""
    model = build().train()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100))
    x, ds = torch.randn(4, 3, 32, 32), samples()
    tokens = torch.stack([torch.as_tensor(d.text_tokens) for d in ds])
    with torch.autocast('cpu', dtype=torch.float16):
        loss = model.loss(x, ds)['loss']
        img, txt = model.extract_image_feat(x), model.extract_text_feat(tokens)
        naive = 100. * img @ txt.t()
    assert img.dtype == txt.dtype == loss.dtype == torch.float32
    assert naive.dtype == torch.float16  # what autocast would do to the product
    logits = 100. * img.double() @ txt.double().t()
    labels = torch.arange(4)
    ref = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # and the fp16 model's loss is close to the fp32 model's (the towers' rounding only)
    ref32 = model.loss(x, ds)['loss']
    assert loss.item() == pytest.approx(ref32.item(), rel=1e-2)


# (dtype, max relative error of the loss, of all gradients together, min cosine per tensor):
# about 10x the measured errors (loss fp16 6.3e-4, bf16 7.0e-3; the worst single gradient
# tensor, a LayerNorm bias, fp16 3.2e-2 / cosine 0.9995, bf16 0.16 / 0.990)
CLIP_AMP = [(torch.float16, 1e-2, 5e-2, 0.99), (torch.bfloat16, 5e-2, 0.3, 0.9)]


@pytest.mark.parametrize('dtype, loss_tol, grad_tol, min_cos', CLIP_AMP)
def test_autocast_fp16_bf16_stays_finite_and_close_to_fp32(dtype, loss_tol, grad_tol, min_cos):
    """Both towers with activations of hundreds and exp(logit_scale) ~ 100: the loss and every
    gradient (``logit_scale``'s included) finite and close to fp32 under fp16 and bf16
    autocast."""
    model = _loud(build()).train()
    with torch.no_grad():  # just below the clamp, where logit_scale still has a gradient
        model.logit_scale.fill_(math.log(99.9))
    x, ds = torch.randn(4, 3, 64, 64), samples()

    def step(dtype):
        model.zero_grad()
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model.loss(x, ds)['loss']
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    ref, ref_grads = step(None)
    loss, grads = step(dtype)
    assert math.isfinite(loss) and all(torch.isfinite(v).all() for v in grads.values())
    assert loss == pytest.approx(ref, rel=loss_tol)
    flat = torch.cat([grads[n].flatten() for n in ref_grads])
    ref_flat = torch.cat([v.flatten() for v in ref_grads.values()])
    assert ((flat - ref_flat).norm() / ref_flat.norm()).item() < grad_tol
    for n, v in ref_grads.items():
        assert F.cosine_similarity(grads[n].flatten(), v.flatten(), dim=0) > min_cos, n


def _rank(rank, world, init_file, x, tokens, out_dir, kwargs=None):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    model = build(**(kwargs or {})).train()
    n = x.shape[0] // world
    ds = [DataSample(text_tokens=t.numpy()) for t in tokens[rank * n:(rank + 1) * n]]
    loss = model.loss(x[rank * n:(rank + 1) * n], ds)['loss']
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    torch.save({'loss': loss.detach(), 'grads': grads}, os.path.join(out_dir, f'{rank}.pt'))
    dist.destroy_process_group()


def test_gather_across_two_ranks_gives_the_full_batch_gradient(tmp_path):
    """Each rank builds the full 8x8 logits from gathered features; gradients flow through its
    own 4 samples only. The loss equals the single-process loss of all 8, and the rank gradients
    sum to its gradient (DDP then averages them: the full-batch gradient / world size, as in
    OpenCLIP; ``logit_scale``, used whole on every rank, gets the full gradient on each)."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    tokens = CLIPTokenizer(16)(CAPTIONS + ['a boat.', 'snow.', 'a tree.', 'the sea.'])
    torch.multiprocessing.spawn(_rank, args=(2, str(tmp_path / 'init'), x, tokens, str(tmp_path)),
                                nprocs=2, join=True)
    parts = [torch.load(tmp_path / f'{r}.pt') for r in range(2)]
    model = build().train()
    loss = model.loss(x, [DataSample(text_tokens=t.numpy()) for t in tokens])['loss']
    loss.backward()
    for part in parts:
        torch.testing.assert_close(part['loss'], loss.detach(), rtol=1e-5, atol=1e-6)
    for part in parts:  # logit_scale multiplies the full logits on every rank: full gradient
        torch.testing.assert_close(part['grads']['logit_scale'], model.logit_scale.grad)
    for k, p in model.named_parameters():
        if p.grad is None or k == 'logit_scale':
            continue
        total = parts[0]['grads'][k] + parts[1]['grads'][k]
        # gradients up to ~30 in size (the token embedding): fp32 summation-order noise ~1e-5
        torch.testing.assert_close(total, p.grad, rtol=1e-4, atol=1e-4, msg=k)


def test_local_loss_with_gathered_gradients_gives_the_full_batch_gradient(tmp_path):
    """The authors' setting (``local_loss`` + ``gather_with_grad``): each rank scores its 4 rows
    against all 8 columns; the rank losses average to the full-batch loss and the rank gradients
    (through the differentiable gather) sum to world size x its gradient, so DDP's average is the
    full-batch gradient itself."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    tokens = CLIPTokenizer(16)(CAPTIONS + ['a boat.', 'snow.', 'a tree.', 'the sea.'])
    kwargs = dict(local_loss=True, gather_with_grad=True)
    torch.multiprocessing.spawn(
        _rank, args=(2, str(tmp_path / 'init'), x, tokens, str(tmp_path), kwargs), nprocs=2,
        join=True)
    parts = [torch.load(tmp_path / f'{r}.pt') for r in range(2)]
    model = build(**kwargs).train()  # one process: local = global
    loss = model.loss(x, [DataSample(text_tokens=t.numpy()) for t in tokens])['loss']
    loss.backward()
    torch.testing.assert_close((parts[0]['loss'] + parts[1]['loss']) / 2, loss.detach())
    for k, p in model.named_parameters():
        if p.grad is not None:
            total = parts[0]['grads'][k] + parts[1]['grads'][k]
            # gradients up to ~30 in size: fp32 summation-order noise ~1e-5
            torch.testing.assert_close(total / 2, p.grad, rtol=1e-4, atol=1e-4, msg=k)


def test_a_first_global_batch_of_one_pair_is_refused():
    """InfoNCE over one pair is 0 at every iteration; a later batch of one (a data remainder) is
    scored as usual."""
    model = build().train()
    with pytest.raises(ValueError) as err:
        model.loss(torch.randn(1, 3, 32, 32), samples(CAPTIONS[:1]))
    assert str(err.value) == ('ContrastiveCLIP: the contrastive loss needs a global batch of at '
                              'least 2 image-text pairs (each pair is scored against the others), '
                              'got 1 (train_dataloader.batch_size x GPUs); its loss would be 0 at '
                              'every iteration.')
    model = build().train()
    model.loss(torch.randn(4, 3, 32, 32), samples())
    assert model.loss(torch.randn(1, 3, 32, 32), samples(CAPTIONS[:1]))['loss'] == 0
