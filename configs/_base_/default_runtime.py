# The runtime of every config of this package: mmpretrain's default runtime plus the pieces below.
# They are config entries, not something tools/train.py adds: the stock tools/train.py of
# mmpretrain, mmseg and mmdet runs a config of this package exactly as ours does.
# A config whose chain starts at a complete stock config (which brings the stock runtime, and
# mmengine allows a key in only one of several bases) states the same entries itself.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['visionllama_mm'], allow_failed_imports=False)

# mmengine's Runner with strict checkpoint loading and dataset checks (visionllama_mm.engine.runner)
runner_type = 'CheckedRunner'

default_hooks = dict(
    # a crash while saving leaves the previous checkpoint and last_checkpoint intact
    checkpoint=dict(type='AtomicCheckpointHook'),
    # stop at a NaN/inf loss or gradient norm; never save NaN weights
    nonfinite_check=dict(type='NonFiniteCheckHook'),
    # exact resume: every random draw of training is keyed by (seed, iteration, rank); a training
    # loader takes its samples' augmentation keys from the sampler, so every training config wraps
    # its sampler: sampler=dict(type='ReproducibleSampler', sampler=dict(type='DefaultSampler', ...))
    # (a default hook, so that a config's own custom_hooks, e.g. EMA, leave it in place)
    reproducibility=dict(type='ReproducibleRandomnessHook'))
