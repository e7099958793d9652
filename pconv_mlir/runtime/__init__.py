"""Build generated LLVM IR into native code, run it with numpy arrays, and measure its cost.

One job per module; import from the module (nothing is re-exported here):

- `pconv_mlir.runtime.build`: clang-22 builds for a `pconv_mlir.machine.Machine`.
  `compile_shared_library`, `compile_executable` (with a C driver; static for qemu), both with
  an optional `sanitize="address"`; `SUPPORT_C`, the C support code (`memrefCopy`) compiled in
  when the IR needs it, and so are the C runtime files of this package (`runtime_sources`):
  `pconv_omp.c`, the libomp ABI that the parallel loops call, on a pthread pool,
  `pconv_alloc.c`, the heap functions of `memref.alloc` that reuse freed buffers, and
  `pconv_profile.c`, the layer timer of `pconv-profile-layers`. Failures raise
  `pconv_mlir.errors.BuildError`.
- `pconv_mlir.runtime.driver`: the C side of the bare-pointer ABI, typed from
  `pconv_mlir.elements.SCALARS`. `c_header` declares an entry point for C programs,
  `library_header` and `library_source` the entry points of a compiled model's library
  (`<name>_forward`, `<name>_set_threads`); `generate_driver` writes the `main` of an
  executable that reads a call's arguments from a file, calls, and writes the outputs back.
- `pconv_mlir.runtime.runners`: the python side. `Runner.call(name, *arrays)` checks the
  arguments against the signature and fills output arrays in place; `HostRunner` (ctypes),
  `ExecutableRunner` (a driver executable, natively or behind a launcher, threads from its
  `env`'s `PCONV_NUM_THREADS`), `QemuRunner` (aarch64 under qemu);
  `build_runner(module, ctx, target=...)` and `build_runner_from_ir` lower, build and load
  in one step, under AddressSanitizer with `sanitize="address"`.
  Failures while running raise `pconv_mlir.errors.RunError`.
- `pconv_mlir.runtime.mca`: the aarch64 cost model, llvm-mca-22's cycle estimate for the hot
  loop (`llvm_mca_report`, `llvm_mca_cycles`, `McaReport`).
- `pconv_mlir.runtime.timing`: the host cost model, `median_seconds(call)`.

The package imports no front end (torch), compiler driver or pass pipeline: it takes LLVM IR, or
a module in upstream dialects that `pconv_mlir.lowering.llvm` lowers.
"""
