# Setup. On Colab (or any Python without the library) this installs the companion at the book's
# release, pinned below, and says what it does; on a machine set up with the README's commands it does nothing.
import importlib.util, os, subprocess, sys

REPOSITORY, RELEASE = "https://github.com/untrainable-book/untrainable", "v0.1.0"
if importlib.util.find_spec("untrainable") is None:
    print(f"The untrainable library is not installed: cloning {REPOSITORY} at release {RELEASE} and installing it.")
    subprocess.run(["git", "clone", "--depth", "1", "--branch", RELEASE, REPOSITORY, "untrainable"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "untrainable"], check=True)
    sys.path.insert(0, os.path.abspath("untrainable/src"))
    os.chdir("untrainable/notebooks")
    # This copy has no local datasets: torchvision's download of the public ones is turned on, and said so.
    os.environ.setdefault("UNTRAINABLE_DOWNLOAD", "1")
    print(f"Dataset downloads: UNTRAINABLE_DOWNLOAD={os.environ['UNTRAINABLE_DOWNLOAD']} (set it to 0 before this cell to refuse).")
