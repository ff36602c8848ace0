"""environment.yml specs as pip requirements: what pip cannot install here is dropped with a note when the tests
skip without it, and fails naming it otherwise."""

from __future__ import annotations

import pytest

from expagent.tasks.swebench_specs import CondaOnly, conda_requirements

#: the dependency list of matplotlib 3.8.0's environment.yml (SWE-bench's matplotlib 3.5-3.7 recipes build from
#: this file), shortened to the entries that matter here
MPL_ENV = """\
name: mpl-dev
channels:
  - conda-forge
dependencies:
  - cairocffi
  - contourpy>=1.0.1
  - freetype
  - numpy>=1.21
  - pillow>=6.2
  - pygobject
  - pyqt
  - wxpython
  - graphviz
  - pip
  - pip:
      - pikepdf
  - gtk4
  - pytest!=4.6.0,!=5.4.0
"""


def test_gui_toolkits_pip_cannot_install_here_are_dropped_with_a_note():
    requirements, notes = conda_requirements(MPL_ENV, "environment.yml")
    assert requirements == ["cairocffi", "contourpy>=1.0.1", "numpy>=1.21", "Pillow>=6.2", "PyQt5", "pikepdf",
                            "pytest!=4.6.0,!=5.4.0"]
    dropped = {note.split(":")[0].removeprefix("dropped conda-only ") for note in notes}
    assert dropped == {"pygobject", "wxpython", "graphviz", "gtk4"}
    assert all("skip without" in note for note in notes)


def test_a_package_the_tests_need_and_only_conda_has_fails_naming_it():
    with pytest.raises(CondaOnly, match="environment.yml needs c-compiler, which only conda provides"):
        conda_requirements("dependencies:\n  - numpy\n  - c-compiler\n", "environment.yml")
