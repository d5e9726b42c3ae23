"""Issue 13, class 9: a %%c cell is never more than a C cell. Its gcc flags and #include
lines must not write, run or quote anything of the host's."""

from __future__ import annotations

import hostmarkers as hm

PROGRAM = "int main(void) { return 0; }\n"


def test_class9_linker_flags_cannot_write_host_files(kernel, empty_dir):
    kernel.run(f"%%c -Wl,-o,{empty_dir.path}/linked\n{PROGRAM}", timeout=60)
    empty_dir.assert_unchanged()


def test_class9_a_wrapper_cannot_run_host_commands(kernel, empty_dir):
    kernel.run(f"%%c -wrapper /bin/sh,-c,'touch {empty_dir.path}/ran'\n{PROGRAM}",
               timeout=60)
    empty_dir.assert_unchanged()


def test_class9_an_include_cannot_quote_host_files(kernel, secret):
    res = kernel.run(f'%%c\n#include "{secret.path}"\n{PROGRAM}', timeout=60)
    secret.assert_unread(hm.texts_of(res))


def test_class9_a_response_file_cannot_quote_host_files(kernel, secret):
    res = kernel.run(f"%%c @{secret.path}\n{PROGRAM}", timeout=60)
    secret.assert_unread(hm.texts_of(res))


def test_class9_an_output_flag_is_refused_before_gcc_runs(kernel, empty_dir):
    res = kernel.run(f"%%c -o {empty_dir.path}/out\n{PROGRAM}", timeout=30)
    assert res.reply["ename"] == "HeaderError" and "drop -o" in res.reply["evalue"]
    empty_dir.assert_unchanged()


def test_class9_a_c_cell_still_runs_in_the_container(kernel):
    res = kernel.ok('%%c -O2 -DGREETING=\'"hello"\'\n#include <stdio.h>\n#include <unistd.h>\n'
                    "int main(void) { printf(\"%s %d\\n\", GREETING, (int)getpid()); "
                    "return 0; }\n", timeout=60)
    assert res.stdout.startswith("hello ")
