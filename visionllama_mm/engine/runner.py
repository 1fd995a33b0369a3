"""``runner_type = 'CheckedRunner'``: mmengine's Runner with its inputs checked.

Every config of the package names it (``configs/_base_/default_runtime.py``), so mmpretrain's,
mmseg's and mmdet's own ``tools/train.py`` build it as ours does; it is registered in mmengine's
root ``RUNNERS`` registry, which the stock tools build from.

Differences from :class:`mmengine.runner.Runner` (everything else is inherited unchanged):

* **strict checkpoint loading**: ``load_from``, ``tools/test.py CHECKPOINT`` and ``--resume``
  refuse weights with missing, unexpected or shape-mismatched keys and name them
  (:func:`~visionllama_mm.engine.checks.load_state_dict_checked`); mmengine only warns. Partial
  loading is explicit: ``load_strict = False`` in the config (or ``--cfg-options
  load_strict=False``) loads the matching tensors and logs the rest.
  A checkpoint of which not one tensor fits is refused even then. ``load_from`` may be an
  ``http(s)://`` URL: it is downloaded into torch's hub cache and read with ``weights_only=True``;
  a failed download is one line that names the URL and the fix (pass a local path).
* **checked ``init_cfg=dict(type='Pretrained', ...)``**: every module of this package loads it
  through :mod:`visionllama_mm.engine.pretrained` (nothing loaded, or under 90% of the module's
  tensors, is an error with the key report); ``load_strict = False`` also relaxes those that do
  not set their own ``strict``.
* **dataset checks**: an empty annotation file and, for classifiers, labels outside the head's
  ``num_classes`` are errors naming the file and line when the dataloader is built
  (:mod:`visionllama_mm.datasets.checks`), instead of failures inside the first or a later epoch.
  So is a listed image, segmentation map or video that is missing or empty (one ``os.stat`` per
  file), and pipelines load images with
  :class:`~visionllama_mm.datasets.transforms.CheckedLoadImageFromFile` where they say
  ``LoadImageFromFile`` (and segmentation maps with ``CheckedLoadSegAnnotations`` where they say
  mmseg's ``LoadAnnotations``): a bad file mid-run is named with its sample index. An annotation
  line that the stock reader fails on is named (file and line).
"""
from typing import Callable, Union

from mmengine.registry import RUNNERS
from mmengine.runner import Runner as _StockRunner

from ..datasets.checks import (check_data_files, check_dataset_cfg, check_labels,
                               naming_annotation_errors)
from ..datasets.transforms import use_checked_image_loading
from .checks import _unwrap, load_state_dict_checked
from .pretrained import load_checkpoint_source, partial_pretrained

__all__ = ['Runner']


@RUNNERS.register_module(name='CheckedRunner')
class Runner(_StockRunner):
    """mmengine's Runner with strict checkpoint loading and dataset checks (see module doc)."""

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module\.', '')]):
        """As mmengine's, but a checkpoint that does not fit the model is an error unless the
        config sets ``load_strict = False`` (``strict`` is kept for signature compatibility)."""
        checkpoint = load_checkpoint_source(filename, map_location=map_location,
                                            what='load_from')
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        load_state_dict_checked(self.model, checkpoint, source=filename,
                                strict=strict or self.cfg.get('load_strict', True),
                                revise_keys=revise_keys, logger=self.logger)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _init_model_weights(self) -> None:
        """As mmengine's; ``load_strict = False`` also lets ``Pretrained`` init_cfgs that do not
        set their own ``strict`` load a partial match (see :mod:`.pretrained`)."""
        with partial_pretrained(not self.cfg.get('load_strict', True)):
            super()._init_model_weights()

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """As mmengine's, after checking the dataset's annotation file is not empty; images load
        with ``CheckedLoadImageFromFile`` and every listed file is checked to exist and not be
        empty before the first iteration; a malformed annotation file is named with its line."""
        dataset = dataloader.get('dataset') if isinstance(dataloader, dict) else None
        if isinstance(dataset, dict):
            check_dataset_cfg(dataset)
            dataloader = {**dataloader, 'dataset': use_checked_image_loading(dataset)}
        with naming_annotation_errors(dataset):
            loader = _StockRunner.build_dataloader(dataloader, seed=seed,
                                                   diff_rank_seed=diff_rank_seed)
        check_data_files(getattr(loader, 'dataset', None))
        return loader

    def _check_labels(self, loop, where: str):
        """Labels of the loop's dataset against the class count of a classifier's head or a
        class-conditional denoiser (DiT/SiT: label ``num_classes`` is the null class of
        classifier-free guidance, so such a label would silently train as "no class")."""
        model = _unwrap(self.model)
        num_classes, model_key = None, None
        for attr, key in (('head', 'num_classes in the model (head and data_preprocessor)'),
                          ('denoiser', 'model.denoiser.num_classes')):
            n = getattr(getattr(model, attr, None), 'num_classes', None)
            if isinstance(n, int):
                num_classes, model_key = n, key
                break
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if num_classes is not None and dataset is not None:
            # a loop built before (runner.val() after train()) is not checked twice
            checked = vars(self).setdefault('_labels_checked', set())
            if id(dataset) not in checked:
                check_labels(dataset, num_classes, where=where, model_key=model_key)
                checked.add(id(dataset))
        return loop

    def build_train_loop(self, loop):
        return self._check_labels(super().build_train_loop(loop), 'train_dataloader')

    def build_val_loop(self, loop):
        return self._check_labels(super().build_val_loop(loop), 'val_dataloader')

    def build_test_loop(self, loop):
        return self._check_labels(super().build_test_loop(loop), 'test_dataloader')
