"""Default hyper-parameters: the paper's §5.1 protocol for a 2-stack FAN; every config overrides this one."""

import ml_collections

from sphm_jax import geometry


def get_config():
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Data: a TFDS builder of tfds_builders/ ("name" or "name/config") and its splits.
    config.dataset = "synthetic_faces"
    config.data_dir = ml_collections.FieldReference(None, field_type=str)
    config.manual_dir = ml_collections.FieldReference(None, field_type=str)
    config.eval_dataset = ml_collections.FieldReference(None, field_type=str)  # None: `dataset`
    config.train_split = "train"
    config.eval_splits = ("test",)
    config.crop_scale = geometry.CROP_SCALE  # crop side / longer box side: face ~220 of 256 px

    # Schedule (§5.1): Adam, lr 1e-4, 50 epochs, x0.1 at epochs 25 and 40.
    config.batch_size = 32  # global, split over every device of every host
    config.num_epochs = 50
    config.num_train_steps = -1  # > 0 overrides num_epochs
    config.learning_rate = 1e-4
    config.optimizer = "adam"  # "sgd": plain gradient steps, whose rounding stays rounding-sized
    config.lr_drop_epochs = (25, 40)
    config.lr_drop_factor = 0.1
    # "step": the drops above (§5.1); "cosine": linear warm-up, then cosine decay to 0 (short runs).
    config.lr_schedule = "step"
    config.warmup_steps = 0  # linear warm-up from 0 over these steps (either schedule)

    config.log_every_steps = 50
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 2000
    config.keep_checkpoints = 3

    # Heatmaps (§3.2, §3.3): 256 px input, 64 px maps.
    config.image_size = 256
    config.heatmap_size = 64
    config.sigma = 2.0  # the roundtrip table of docs/experiments.md
    config.quantize = ml_collections.FieldReference(None, field_type=str)  # None, "round", "floor"
    config.decoder = "local_softargmax"
    config.window = 5
    config.temperature = 10.0

    # Siamese consistency training (§3.4, Eq. 6).
    config.siamese = True

    # Augmentation (§5.1), on the device.
    config.augment = ml_collections.ConfigDict()
    config.augment.rotation = 30.0
    config.augment.scale = (0.85, 1.15)
    config.augment.translation = 0.05
    config.augment.flip = True
    config.augment.colour = (0.6, 1.4)

    # Network (§5): FAN, 2 stacks of width 256.
    config.model = ml_collections.ConfigDict()
    config.model.num_stacks = 2
    config.model.width = 256
    config.model.depth = 4
    config.dtype = "float32"  # activations; "bfloat16" on TPU / recent GPUs
    # A checkpoint directory to start from (e.g. 300W-LP pre-training), when the workdir has none.
    config.init_checkpoint = ml_collections.FieldReference(None, field_type=str)

    # Evaluation (appendix B): the NME normalisation, AUC cut-off and failure threshold.
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.10
    config.failure_threshold = 0.10
    config.subset_features = ()  # metadata features to report per value, e.g. ("subset",)
    return config
