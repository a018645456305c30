"""ARM's official PyTorch networks, restated for the tests (needs torch, not torchvision).

torchvision's wheel from the registry does not import against the CPU torch wheel used here
("operator torchvision::nms does not exist"), so `torchvision.models.resnet18`'s module tree is
restated with its own module and attribute names (`conv1, bn1, relu, maxpool, layer1..4,
avgpool, fc`; `BasicBlock.conv1, bn1, relu, conv2, bn2, downsample`), and so are ARM's
`Amend_raf`, `ResNet18_ARM___RAF` and `ResNet18` (src/Networks.py), so that their
`state_dict()` keys are the ones the official files carry. The forward passes follow the
official code's arithmetic (the per-channel de-albino loop, the batch-and-channel mean).
"""

import numpy as np


def networks(torch):
    """The reference classes, built on the given torch module.

    Returns:
        dict: `resnet18` (torchvision's, with `fc`), `arm` (`ResNet18_ARM___RAF`),
        `official_resnet18` (ARM's `ResNet18` class).
    """
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet18(nn.Module):  # torchvision.models.resnet18
        def __init__(self, num_classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            widths = (64, 128, 256, 512)
            inplanes = 64
            for stage, planes in enumerate(widths, start=1):
                stride = 1 if stage == 1 else 2
                blocks = [BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)]
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
                inplanes = planes
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)

        def features(self, x):
            """The map before the average pool (512 x 7 x 7 at 224)."""
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

        def forward(self, x):
            return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))

    class AmendRaf(nn.Module):  # Networks.Amend_raf
        def __init__(self, inplace=2):
            super().__init__()
            self.de_albino = nn.Conv2d(1, 1, kernel_size=32, stride=8, padding=0, bias=False)
            self.bn = nn.BatchNorm2d(inplace)
            self.alpha = nn.Parameter(torch.tensor([1.0]))

        def forward(self, x):
            maps = [self.de_albino(x[:, i:i + 1]) for i in range(x.size(1))]
            x = self.bn(torch.cat(maps, 1))
            global_mean = x.mean(dim=[0, 1])
            return torch.mean(x, 1, keepdim=True) + self.alpha * global_mean, self.alpha

    class ResNet18ARM(nn.Module):  # Networks.ResNet18_ARM___RAF
        def __init__(self, num_classes=7):
            super().__init__()
            self.features = nn.Sequential(*list(ResNet18().children())[:-2])
            self.arrangement = nn.PixelShuffle(16)
            self.arm = AmendRaf()
            self.fc = nn.Linear(121, num_classes)

        def forward(self, x):
            x, alpha = self.arm(self.arrangement(self.features(x)))
            return self.fc(x.view(x.size(0), -1)), alpha

    class OfficialResNet18(nn.Module):  # Networks.ResNet18
        def __init__(self, num_classes=7):
            super().__init__()
            self.features = nn.Sequential(*list(ResNet18().children())[:-1])
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.features(x)
            out = self.fc(x.view(x.size(0), -1))
            return out, out

    return {"resnet18": ResNet18, "arm": ResNet18ARM, "official_resnet18": OfficialResNet18}


def randomise(torch, module, seed, alpha=None):
    """Random weights and non-trivial BatchNorm statistics (as a trained network has), in eval.

    Convolutions keep torch's default initialisation drawn from `seed`; every BatchNorm gets a
    random scale, shift, running mean and running variance; the classifier is scaled so that
    the logits spread over a few units (probabilities neither uniform nor saturated).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(child.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(child, torch.nn.BatchNorm2d):
            size = child.num_features
            with torch.no_grad():
                child.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, size)))
                child.bias.copy_(torch.from_numpy(rng.normal(0.0, 0.2, size)))
                child.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.2, size)))
                child.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, size)))
                child.num_batches_tracked.fill_(int(rng.integers(100, 10000)))
    with torch.no_grad():
        module.fc.weight.mul_(0.3)
        if alpha is not None:
            module.arm.alpha.fill_(alpha)
    return module.eval()


def to_torch_input(torch, pictures, dtype=None):
    """uint8 RGB (n, h, w, 3) -> what ARM's test transform feeds: ToTensor, then Normalize
    (in float32 as torchvision does, or in `dtype`, e.g. `torch.float64`)."""
    dtype = dtype or torch.float32
    x = torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).to(dtype).div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=dtype)[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=dtype)[None, :, None, None]
    return (x - mean) / std
