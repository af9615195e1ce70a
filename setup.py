"""Only what pyproject.toml cannot say: the wheel carries the repository's runbooks/.

The runbooks live at the top of the repository (alerts link to them there); ``build_py``
copies them into the package as ``memorywatch/runbooks/*.md``, so ``memorywatch runbook``
works from an installed wheel in any directory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRunbooks(build_py):
    def run(self) -> None:
        super().run()
        source = Path(__file__).resolve().parent / "runbooks"
        target = Path(self.build_lib) / "memorywatch" / "runbooks"
        self.mkpath(str(target))
        for page in sorted(source.glob("*.md")):
            self.copy_file(str(page), str(target / page.name))


setup(cmdclass={"build_py": BuildPyWithRunbooks})
