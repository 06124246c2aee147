/**
 * An embedded CPython for driving NumPy, PyTorch or pyarrow from Deno in
 * the same process, and handing tensors across without copies through
 * DLPack capsules.
 *
 * ```ts
 * import { Python } from "./python.ts";
 * const py = Python.load({ sitePackages: [".venv/lib/python3.11/site-packages"] });
 * py.exec("import numpy as np");
 * py.bind("img", view);                      // a DLPack provider for `view`
 * py.exec("a = np.from_dlpack(img)");        // zero copy
 * using back = py.importTensor("a * 2");      // a numpy result, zero copy
 * ```
 *
 * Needs a shared libpython (`libpython3.X.so`): found via `TESSERA_PYTHON_LIB`,
 * the `library` option, or the usual system paths. CPython is initialised
 * once per process and used from the main thread only.
 * @module
 */

import { TesseraError } from "./src/errors.ts";
import { fromDLPack, type TensorView } from "./src/tensor_view.ts";

/** A Python exception, with its formatted traceback as the message. */
export class PythonError extends TesseraError {}

/** Options of {@link Python.load}. */
export interface PythonOptions {
  /** Path of the shared libpython to load. */
  library?: string;
  /** Folders added to `sys.path` (e.g. a venv's site-packages). */
  sitePackages?: string[];
}

const symbols = {
  Py_InitializeEx: { parameters: ["i32"], result: "void" },
  Py_IsInitialized: { parameters: [], result: "i32" },
  PyImport_AddModule: { parameters: ["buffer"], result: "pointer" },
  PyModule_GetDict: { parameters: ["pointer"], result: "pointer" },
  PyRun_String: { parameters: ["buffer", "i32", "pointer", "pointer"], result: "pointer" },
  PyDict_GetItemString: { parameters: ["pointer", "buffer"], result: "pointer" },
  PyUnicode_AsUTF8: { parameters: ["pointer"], result: "pointer" },
  Py_DecRef: { parameters: ["pointer"], result: "void" },
  PyErr_Print: { parameters: [], result: "void" },
  PyEval_SaveThread: { parameters: [], result: "pointer" },
  PyGILState_Ensure: { parameters: [], result: "i32" },
  PyGILState_Release: { parameters: ["i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const FILE_INPUT = 257;

const CANDIDATES = [11, 12, 13, 10, 14].flatMap((minor) => [
  `/usr/lib/x86_64-linux-gnu/libpython3.${minor}.so.1.0`,
  `/usr/lib/aarch64-linux-gnu/libpython3.${minor}.so.1.0`,
  `/usr/lib64/libpython3.${minor}.so.1.0`,
  `/usr/local/lib/libpython3.${minor}.so.1.0`,
]);

const PRELUDE = `
import ctypes as _ct, sys as _sys, traceback as _tb
_new = _ct.pythonapi.PyCapsule_New
_new.restype = _ct.py_object
_new.argtypes = [_ct.c_void_p, _ct.c_char_p, _ct.c_void_p]
_get = _ct.pythonapi.PyCapsule_GetPointer
_get.restype = _ct.c_void_p
_get.argtypes = [_ct.py_object, _ct.c_char_p]
_set_name = _ct.pythonapi.PyCapsule_SetName
_set_name.restype = _ct.c_int
_set_name.argtypes = [_ct.py_object, _ct.c_char_p]
_NAMES = {True: (b"dltensor_versioned", b"used_dltensor_versioned"), False: (b"dltensor", b"used_dltensor")}

class TesseraTensor:
    """A DLPack provider over memory exported by tessera (one capsule, consumed once)."""
    def __init__(self, address, versioned):
        self.versioned = versioned
        self.capsule = _new(address, _NAMES[versioned][0], None)
    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        if self.versioned and (max_version is None or max_version[0] < 1):
            raise BufferError("this tensor was exported as a versioned (DLPack 1.x) capsule")
        return self.capsule
    def __dlpack_device__(self):
        return (1, 0)

def _take_dlpack(obj, versioned):
    """The address of obj's DLPack managed tensor; the capsule is marked used (ours to delete)."""
    cap = obj.__dlpack__(max_version=(1, 0)) if versioned else obj.__dlpack__()
    name, used = _NAMES[versioned]
    address = _get(cap, name)
    _set_name(cap, used)
    return str(address)
`;

let instance: Python | undefined;

/** The embedded interpreter (one per process). */
export class Python {
  readonly #lib: Deno.DynamicLibrary<typeof symbols>["symbols"];
  readonly #globals: Deno.PointerObject;
  /** Path of the loaded libpython. */
  readonly library: string;

  private constructor(library: string, sitePackages: string[]) {
    this.library = library;
    promoteToGlobal(library);
    this.#lib = Deno.dlopen(library, symbols).symbols;
    if (!this.#lib.Py_IsInitialized()) {
      this.#lib.Py_InitializeEx(0);
      // Hold the GIL only while calling in: threads of extension modules
      // (torch, pyarrow) and DLPack deleters must be able to take it, also
      // while the process exits.
      this.#lib.PyEval_SaveThread();
    }
    const globals = this.#withGil(() => {
      const main = this.#lib.PyImport_AddModule(cString("__main__"));
      return main && this.#lib.PyModule_GetDict(main);
    });
    if (!globals) throw new PythonError("could not reach Python's __main__ module");
    this.#globals = globals;
    this.exec(
      `import sys\nsys.path[:0] = ${JSON.stringify(sitePackages)}\n${PRELUDE}`,
    );
  }

  /** Loads and initialises CPython, or returns the interpreter already loaded. */
  static load(options: PythonOptions = {}): Python {
    if (instance) return instance;
    const library = options.library ?? Deno.env.get("TESSERA_PYTHON_LIB") ??
      CANDIDATES.find(exists);
    if (!library) {
      throw new PythonError(
        `no shared libpython found (looked in ${CANDIDATES.slice(0, 4).join(", ")} …); ` +
          "install one (Debian: apt-get install libpython3.11) or set TESSERA_PYTHON_LIB",
      );
    }
    instance = new Python(library, options.sitePackages ?? []);
    return instance;
  }

  #withGil<T>(work: () => T): T {
    const state = this.#lib.PyGILState_Ensure();
    try {
      return work();
    } finally {
      this.#lib.PyGILState_Release(state);
    }
  }

  /** Runs Python statements in `__main__`; a Python exception becomes a {@link PythonError}. */
  exec(code: string): void {
    this.#withGil(() => this.#exec(code));
  }

  #exec(code: string): void {
    const wrapped = `__tessera_error__ = ""\ntry:\n    exec(${JSON.stringify(code)}, globals())\n` +
      `except BaseException:\n    import traceback\n    __tessera_error__ = traceback.format_exc()\n`;
    const result = this.#lib.PyRun_String(
      cString(wrapped),
      FILE_INPUT,
      this.#globals,
      this.#globals,
    );
    if (result === null) {
      this.#lib.PyErr_Print();
      throw new PythonError("Python could not run the code (see stderr)");
    }
    this.#lib.Py_DecRef(result);
    const error = this.#string("__tessera_error__");
    if (error) throw new PythonError(error.trimEnd());
  }

  /** `str()` of a Python expression. */
  eval(expression: string): string {
    return this.#withGil(() => {
      this.#exec(`__tessera_value__ = str(${expression})`);
      return this.#string("__tessera_value__");
    });
  }

  #string(name: string): string {
    const item = this.#lib.PyDict_GetItemString(this.#globals, cString(name));
    const utf8 = item && this.#lib.PyUnicode_AsUTF8(item);
    return utf8 ? Deno.UnsafePointerView.getCString(utf8) : "";
  }

  /**
   * Binds `name` in `__main__` to a DLPack provider of `view` (no copy):
   * `numpy.from_dlpack(name)` or `torch.from_dlpack(name)` consume it once.
   */
  bind(name: string, view: TensorView, options: { versioned?: boolean } = {}): void {
    const versioned = options.versioned ?? true;
    const address = Deno.UnsafePointer.value(view.toDLPack({ versioned }));
    this.exec(`${name} = TesseraTensor(${address}, ${versioned ? "True" : "False"})`);
  }

  /** Evaluates `expression` (anything with `__dlpack__`: numpy, torch, …) and imports it as a view, zero copy. */
  importTensor(
    expression: string,
    options: { versioned?: boolean; axes?: string[] } = {},
  ): TensorView {
    const versioned = options.versioned ?? true;
    const address = BigInt(
      this.eval(`_take_dlpack(${expression}, ${versioned ? "True" : "False"})`),
    );
    const pointer = Deno.UnsafePointer.create(address);
    if (!pointer) throw new PythonError(`${expression} gave a null DLPack tensor`);
    return fromDLPack(pointer, { versioned, ...(options.axes ? { axes: options.axes } : {}) });
  }
}

/**
 * Loads `library` with RTLD_GLOBAL (Deno.dlopen loads privately), so the
 * extension modules Python imports (ctypes, numpy, …) resolve its symbols.
 */
function promoteToGlobal(library: string): void {
  const RTLD_NOW = 2, RTLD_GLOBAL = 0x100;
  const libc = Deno.dlopen(Deno.build.os === "darwin" ? "libSystem.dylib" : "libc.so.6", {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  });
  const handle = libc.symbols.dlopen(cString(library), RTLD_NOW | RTLD_GLOBAL);
  libc.close();
  if (handle === null) throw new PythonError(`could not load ${library} with RTLD_GLOBAL`);
}

function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
