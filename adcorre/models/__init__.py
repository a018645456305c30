"""The networks and their files.

- `registry`: one `ArchSpec` per arch (read without Keras);
- `cnn_model`: `CNNModel().get_model(arch, ...)` and its layers (`L2Normalize`, `ScaleInputs`);
- `arm`: the Amend Representation Module; `resnet`: torchvision's ResNet-18 in Keras;
- `weights_io`: saving with metadata, loading every kind of model file without running its code;
  `official_files` (the official Ad-Corre `.h5` releases) and `torch_checkpoints` (`.pth`).
"""
