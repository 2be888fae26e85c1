"""The shared IMPALA CNN torso: output sizes for the Procgen and Atari layouts, uint8 scaling, bad shapes."""

import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig


@pytest.mark.parametrize(
    "config, flat",
    [
        (ImpalaCNNConfig(in_channels=3, height=64, width=64, out_features=64), 32 * 8 * 8),
        (ImpalaCNNConfig(in_channels=4, height=84, width=84, out_features=256), 32 * 11 * 11),
    ],
)
def test_sizes_match_the_reference_layouts(config, flat):
    net = ImpalaCNN(config)
    assert config.flat_features == flat
    assert net.fc.in_features == flat
    x = torch.randint(0, 256, (2, 5, config.in_channels, config.height, config.width), dtype=torch.uint8)
    out = net(x)
    assert out.shape == (2, 5, config.out_features)
    assert (out >= 0).all()  # ReLU after the final Linear


def test_uint8_pixels_are_scaled_to_unit_range():
    torch.manual_seed(0)
    net = ImpalaCNN(ImpalaCNNConfig(in_channels=3, height=8, width=8, channels=(4,), out_features=0))
    pixels = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    assert torch.allclose(net(pixels), net(pixels.float() / 255.0))
    assert net(pixels).shape == (3, 4 * 4 * 4)  # no Linear: the flattened map


def test_residual_blocks_carry_the_skip_connection():
    net = ImpalaCNN(ImpalaCNNConfig(in_channels=1, height=4, width=4, channels=(2,), out_features=0))
    block = net.stages[0].res0
    for p in block.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(block(x), x)


def test_wrong_image_shape_names_the_expected_shape():
    net = ImpalaCNN(ImpalaCNNConfig(in_channels=3, height=64, width=64))
    with pytest.raises(ValueError, match=r"\(3, 64, 64\)"):
        net(torch.zeros(2, 64, 64, 3))


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="channels"):
        ImpalaCNNConfig(channels=())


def test_channels_last_layout_gives_the_standard_layouts_numbers():
    """On the CPU the torso runs in channels-last layout (faster); values and the flattening order (C, H, W)
    are those of the plain layout."""
    torch.manual_seed(0)
    net = ImpalaCNN(ImpalaCNNConfig(in_channels=4, height=20, width=20, channels=(8, 16), out_features=0))
    pixels = torch.randint(0, 256, (3, 4, 20, 20), dtype=torch.uint8)
    plain = torch.relu(net.stages((pixels.float() / 255.0).contiguous())).reshape(3, -1)
    assert (pixels.float() / 255.0).is_contiguous()
    torch.testing.assert_close(net(pixels), plain)
