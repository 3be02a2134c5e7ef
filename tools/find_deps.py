"""Print where the PyPI build dependencies keep their headers and libraries (used by CMake)."""
import os
import sys
import sysconfig


def site_dirs():
    seen = []
    for p in sys.path + [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if p and os.path.isdir(p) and p not in seen:
            seen.append(p)
    return seen


def eigen():
    for d in site_dirs():
        inc = os.path.join(d, "cmeel.prefix", "include", "eigen3")
        if os.path.isfile(os.path.join(inc, "Eigen", "Core")):
            return inc
    raise SystemExit("cmeel-eigen headers not found")


def openblas():
    import scipy_openblas32 as ob

    lib = os.path.join(ob.get_lib_dir(), "libscipy_openblas.so")
    if not os.path.exists(lib):
        raise SystemExit(f"{lib} missing")
    return f"{ob.get_include_dir()};{lib}"


if __name__ == "__main__":
    print({"eigen": eigen, "openblas": openblas}[sys.argv[1]]())
