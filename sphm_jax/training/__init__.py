"""The training shell: the steps and the loop, and what a run needs around them.

train          create_train_state, train_step, eval_step, train_and_evaluate (the loop)
scoring        a predict function in, NME / AUC / failure rate per split and subset out
               (training's evaluation, and the evaluate and ablation commands)
optimizer      the config's optimiser and learning-rate schedule
checkpoints    every orbax call; checkpoints of a workdir
mesh           the data-parallel device mesh, its shardings, moves between hosts and devices
reporting      metrics.jsonl, TensorBoard, progress, the non-finite guard
preemption     SIGTERM -> checkpoint -> exit 143
config_loader  the --config flag (files and shipped configs) and the config's checks
paths          one path layer for local and gs:// paths
xla_cpu        XLA's CPU backend on the measured path (`apply()`, before JAX starts)
configs/       the shipped configs (a link to the repository's configs/)
"""
