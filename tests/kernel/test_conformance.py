"""The public jupyter_kernel_test conformance suite, run against the real kernel."""

from __future__ import annotations

import unittest

import jupyter_kernel_test


class RootfsKernelConformance(jupyter_kernel_test.KernelTests):
    kernel_name = "rootfs"
    language_name = "shell"
    file_extension = ".sh"

    code_hello_world = "echo 'hello, world'"
    code_stderr = "echo oops >&2"
    code_generate_error = "exit 2"

    completion_samples = [
        {"text": "mou", "matches": {"mount", "mountpoint"}},
        {"text": "ls /et", "matches": {"/etc/"}},
        {"text": "%ro", "matches": {"%root"}},
    ]
    complete_code_samples = ["echo hi", "if true; then echo yes; fi", "%root chroot\nls"]
    incomplete_code_samples = ["if true; then", "echo 'unterminated", "for i in 1 2; do"]
    invalid_code_samples = ["%no-such-header-line", "fi"]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        # Completion offers the names of an image already built, never builds one: the
        # first cell builds the default image the path samples complete against.
        cls.kc.execute_interactive("true", timeout=60)


def load_tests(loader: unittest.TestLoader, tests, pattern):  # noqa: ANN001
    return loader.loadTestsFromTestCase(RootfsKernelConformance)
