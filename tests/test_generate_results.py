"""What a generator may return, and how it is recorded: ``Result`` and ``as_result``, field by field."""

from __future__ import annotations

import pytest
from PIL import Image

from biaskit.generate.base import BaseGenerator, Request, Result, as_result


def test_ok_keeps_image_or_bytes_revised_prompt_and_seed():
    image = Image.new("RGB", (2, 2))
    result = Result.ok(image, revised_prompt="a tall doctor", seed=9)
    assert (result.status, result.image, result.data, result.revised_prompt, result.seed, result.message) == \
        ("ok", image, None, "a tall doctor", 9, None)
    encoded = Result.ok(data=b"\x89PNG")
    assert (encoded.status, encoded.image, encoded.data, encoded.revised_prompt, encoded.seed) == \
        ("ok", None, b"\x89PNG", None, None)


@pytest.mark.parametrize("image, data", [(None, None), (Image.new("RGB", (1, 1)), b"x")])
def test_ok_needs_exactly_one_of_image_or_data(image, data):
    with pytest.raises(ValueError) as error:
        Result.ok(image, data=data)
    assert str(error.value) == "Result.ok needs exactly one of image or data"


def test_refused_and_error_carry_their_message_as_text():
    refused = Result.refused(RuntimeError("policy"), revised_prompt="r", seed=4)
    assert (refused.status, refused.message, refused.revised_prompt, refused.seed, refused.image) == \
        ("refused", "policy", "r", 4, None)
    failed = Result.error(404, seed=5)
    assert (failed.status, failed.message, failed.seed, failed.revised_prompt) == ("error", "404", 5, None)
    assert Result.from_exception(KeyError("k")) == Result.error("KeyError: 'k'")


def test_as_result_wraps_what_a_callable_returns():
    image = Image.new("RGB", (2, 2))
    same = Result.refused("no")
    assert as_result(same) is same
    assert as_result(b"abc") == Result.ok(data=b"abc")
    wrapped = as_result(bytearray(b"abc"))
    assert wrapped.data == b"abc" and type(wrapped.data) is bytes
    assert as_result(image) == Result.ok(image)
    assert as_result([1, 2]) == Result.error("generator returned list, expected a PIL.Image, image bytes or a Result")
    assert as_result(None).message == "generator returned NoneType, expected a PIL.Image, image bytes or a Result"
    # an array has a size but no save(): not taken for an image
    import numpy as np
    assert as_result(np.zeros((2, 2, 3))).message == \
        "generator returned ndarray, expected a PIL.Image, image bytes or a Result"


def test_one_failing_sample_does_not_take_its_batch_down():
    class Half(BaseGenerator):
        def generate_one(self, request):
            if request.sample % 2:
                raise TimeoutError("slow")
            return b"img"

    requests = [Request("p", "a doctor", sample, seed) for sample, seed in enumerate([10, 11, 12])]
    assert Half().generate_batch(requests) == [Result.ok(data=b"img"), Result.error("TimeoutError: slow"),
                                               Result.ok(data=b"img")]
    assert Half.batch_size == 1 and Half.max_concurrency is None
