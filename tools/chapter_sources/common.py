COLAB = '''# Colab or a fresh environment: install normlab once (it uses the torch already installed).
import importlib.util, subprocess, sys
if importlib.util.find_spec("normlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "normlab @ git+https://github.com/normlab-book/normlab"], check=True)
from normlab.devices import describe_device
print("device:", describe_device("auto"))'''
