"""The networks and their files.

- `registry`: one `ArchSpec` per arch (read without Keras);
- `cnn_model`: `CNNModel().get_model(arch, ...)` and its layers (`L2Normalize`, `ScaleInputs`);
- `arm`: the Amend Representation Module; `resnet`: torchvision's ResNet-18 in Keras;
- `weights_io`: saving with metadata; `load_model` hands every model file to the one loader of
  `loaders` (one module per file kind) that recognises it, and no code from a file runs;
  `official_files` (the official Ad-Corre `.h5` releases) and `torch_checkpoints` (`.pth`)
  are what two of them read with.
"""
