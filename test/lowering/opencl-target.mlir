// RUN: pconv-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect -t 'opencl{fp16=true}' | filecheck %s
// RUN: pconv-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect -t 'opencl{fp16=true}' | awk '/^\/\/ -----$/ {n++} n < 2' | %clang -x cl -cl-std=CL1.2 -fsyntax-only -Werror -
// RUN: pconv-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect -t 'opencl{fp16_emulation=true}' | filecheck %s --check-prefix=EMU
// RUN: pconv-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect -t 'opencl{fp16_emulation=true}' | awk '/^\/\/ -----$/ {n++} n < 2' | %clang -x cl -cl-std=CL1.2 -fsyntax-only -Werror -Xclang -cl-ext=-cl_khr_fp16 -
// RUN: pconv-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect -t opencl-launch | filecheck %s --check-prefix=LAUNCH
// RUN: not pconv-opt %s --split-input-file --allow-unregistered-dialect -t opencl 2>&1 | filecheck %s --check-prefix=FP16
// RUN: %mlir-opt %s --split-input-file -o /dev/null
// REQUIRES: clang, mlir-opt

// `-t opencl` prints the gpu.modules as OpenCL C 1.2; `-t opencl-launch` the host's launches as
// JSON. The inputs are upstream MLIR (the last RUN line has mlir-opt-22 verify them), written in
// the generic form where xDSL 0.74 has no custom syntax (gpu.module, gpu.func, gpu ops). xDSL
// has no #gpu.address_space: `--allow-unregistered-dialect` parses it. The first two chunks
// (the fp32 and the f16 program) must compile with clang-22 as OpenCL C 1.2.

// CHECK:       // OpenCL C 1.2, printed by pconv-mlir
// CHECK-NOT:   #pragma

// A guarded element-wise kernel on 143 elements, 64 work-items per group.
// CHECK-LABEL: __kernel __attribute__((reqd_work_group_size(64, 1, 1)))
// CHECK-NEXT:  void vadd(__global const float *a, __global const float *b, __global float *c) {
// CHECK-NEXT:    const int i = (int)get_global_id(0);
// CHECK-NEXT:    const bool inside = (uint)i < (uint)143;
// CHECK-NEXT:    if (inside) {
// CHECK-NEXT:      const float x = a[i];
// CHECK-NEXT:      const float y = b[i];
// CHECK-NEXT:      const float s = x + y;
// CHECK-NEXT:      c[i] = s;
// CHECK-NEXT:    }
// CHECK-NEXT:  }

// A pattern conv: 2 channels, 4 taps of a 3x3 window at constant offsets in a window subview.
// CHECK-LABEL: void conv3x3(__global const float *in, __global const float *w, __global float *out) {
// CHECK:         const bool inside = inx & iny;
// CHECK-NEXT:    if (inside) {
// CHECK-NEXT:      float sum = 0.0f;
// CHECK-NEXT:      for (int ch = 0; ch < 2; ++ch) {
// CHECK-NEXT:        const float t0 = in[ch * 195 + y * 13 + x + 1];
// CHECK-NEXT:        const float w0 = w[ch * 4];
// CHECK-NEXT:        const float p0 = fma(t0, w0, sum);
// CHECK:             const float t3 = in[ch * 195 + y * 13 + x + 27];
// CHECK-NEXT:        const float w3 = w[ch * 4 + 3];
// CHECK-NEXT:        const float p3 = fma(t3, w3, p2);
// CHECK-NEXT:        sum = p3;
// CHECK-NEXT:      }
// CHECK-NEXT:      out[y * 11 + x] = sum;
// CHECK-NEXT:    }

// Four lanes per work-item: vload4 / vstore4, a splat, a vector fma and a reduction.
// CHECK-LABEL: void saxpy4(const float a, __global const float *xs, __global float *ys, __global float *sums) {
// CHECK:         const float4 vx = vload4(0, xs + off);
// CHECK-NEXT:    const float4 vy = vload4(0, ys + off);
// CHECK-NEXT:    const float4 va = (float4)(a);
// CHECK-NEXT:    const float4 r = fma(va, vx, vy);
// CHECK-NEXT:    vstore4(r, 0, ys + off);
// CHECK-NEXT:    const float4 one = (float4)(1.0f);
// CHECK-NEXT:    const float last = r.s3;
// CHECK-NEXT:    float4 r1 = one;
// CHECK-NEXT:    r1.s0 = last;
// CHECK-NEXT:    const float total = r1.s0 + r1.s1 + r1.s2 + r1.s3;
// CHECK-NEXT:    sums[i] = total;

// Workgroup memory is a __local array at kernel scope; gpu.barrier a local and global barrier.
// CHECK-LABEL: void group_sum(__global const float *in, __global float *out) {
// CHECK-NEXT:    __local float tile[16];
// CHECK:         tile[t] = v;
// CHECK-NEXT:    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
// CHECK:         if (first) {
// CHECK-NEXT:      float s = 0.0f;
// CHECK-NEXT:      for (int k = 0; k < 16; ++k) {
// CHECK-NEXT:        const float e = tile[k];
// CHECK-NEXT:        const float acc1 = s + e;
// CHECK-NEXT:        s = acc1;
// CHECK-NEXT:      }
// CHECK-NEXT:      out[g] = s;
// CHECK-NEXT:    }

// LAUNCH:      "kernels": [
// LAUNCH:        "name": "vadd",
// LAUNCH-NEXT:   "reqd_work_group_size": [64, 1, 1],
// LAUNCH-NEXT:   "args": [
// LAUNCH-NEXT:     {"type": "__global const float *", "access": "read"},
// LAUNCH-NEXT:     {"type": "__global const float *", "access": "read"},
// LAUNCH-NEXT:     {"type": "__global float *", "access": "write"}
// LAUNCH:      "buffers": [
// LAUNCH-NEXT:   {
// LAUNCH-NEXT:     "id": 0,
// LAUNCH-NEXT:     "function": "main",
// LAUNCH-NEXT:     "origin": "argument",
// LAUNCH-NEXT:     "argument": 0,
// LAUNCH-NEXT:     "dtype": "float32",
// LAUNCH-NEXT:     "shape": [143],
// LAUNCH-NEXT:     "bytes": 572
// LAUNCH:          "origin": "alloc",
// LAUNCH-NEXT:     "dtype": "float32",
// LAUNCH-NEXT:     "shape": [143],
// LAUNCH-NEXT:     "bytes": 572
// LAUNCH:      "launches": [
// LAUNCH:          "kernel": "vadd",
// LAUNCH-NEXT:     "global_size": [192, 1, 1],
// LAUNCH-NEXT:     "local_size": [64, 1, 1],
// LAUNCH-NEXT:     "args": [
// LAUNCH-NEXT:       {"buffer": 0, "bytes": 572},
// LAUNCH-NEXT:       {"buffer": 1, "bytes": 572},
// LAUNCH-NEXT:       {"buffer": 2, "bytes": 572}
// LAUNCH:          "kernel": "saxpy4",
// LAUNCH-NEXT:     "global_size": [16, 1, 1],
// LAUNCH-NEXT:     "local_size": [16, 1, 1],
// LAUNCH-NEXT:     "args": [
// LAUNCH-NEXT:       {"scalar": "float", "bytes": 4, "argument": 3},
// LAUNCH-NEXT:       {"buffer": 0, "bytes": 572},
// LAUNCH-NEXT:       {"buffer": 2, "bytes": 572},
// LAUNCH-NEXT:       {"buffer": 3, "bytes": 44}
// LAUNCH:          "kernel": "conv3x3",
// LAUNCH-NEXT:     "global_size": [16, 16, 1],
// LAUNCH-NEXT:     "local_size": [16, 4, 1],

module attributes {gpu.container_module} {
  "gpu.module"() <{sym_name = "kernels"}> ({
    "gpu.func"() <{function_type = (memref<143xf32>, memref<143xf32>, memref<143xf32>) -> ()}> ({
    ^bb0(%a: memref<143xf32>, %b: memref<143xf32>, %c: memref<143xf32>):
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %n = arith.constant 143 : index
      %inside = arith.cmpi ult, %i, %n : index
      scf.if %inside {
        %x = memref.load %a[%i] : memref<143xf32>
        %y = memref.load %b[%i] : memref<143xf32>
        %s = arith.addf %x, %y : f32
        memref.store %s, %c[%i] : memref<143xf32>
      }
      "gpu.return"() : () -> ()
    }) {gpu.kernel, gpu.known_block_size = array<i32: 64, 1, 1>, sym_name = "vadd"} : () -> ()

    "gpu.func"() <{function_type = (memref<2x15x13xf32>, memref<2x4xf32>, memref<13x11xf32>) -> ()}> ({
    ^bb0(%in: memref<2x15x13xf32>, %w: memref<2x4xf32>, %out: memref<13x11xf32>):
      %x = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %y = "gpu.global_id"() <{dimension = #gpu<dim y>}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %c11 = arith.constant 11 : index
      %c13 = arith.constant 13 : index
      %inx = arith.cmpi slt, %x, %c11 : index
      %iny = arith.cmpi slt, %y, %c13 : index
      %inside = arith.andi %inx, %iny : i1
      scf.if %inside {
        %zero = arith.constant 0.0 : f32
        %sum = scf.for %ch = %c0 to %c2 step %c1 iter_args(%acc = %zero) -> (f32) {
          %win = memref.subview %in[%ch, %y, %x] [1, 3, 3] [1, 1, 1] : memref<2x15x13xf32> to memref<3x3xf32, strided<[13, 1], offset: ?>>
          // the pattern's taps: (0, 1), (1, 0), (1, 1), (2, 1)
          %t0 = memref.load %win[%c0, %c1] : memref<3x3xf32, strided<[13, 1], offset: ?>>
          %w0 = memref.load %w[%ch, %c0] : memref<2x4xf32>
          %p0 = math.fma %t0, %w0, %acc : f32
          %t1 = memref.load %win[%c1, %c0] : memref<3x3xf32, strided<[13, 1], offset: ?>>
          %w1 = memref.load %w[%ch, %c1] : memref<2x4xf32>
          %p1 = math.fma %t1, %w1, %p0 : f32
          %t2 = memref.load %win[%c1, %c1] : memref<3x3xf32, strided<[13, 1], offset: ?>>
          %w2 = memref.load %w[%ch, %c2] : memref<2x4xf32>
          %p2 = math.fma %t2, %w2, %p1 : f32
          %t3 = memref.load %win[%c2, %c1] : memref<3x3xf32, strided<[13, 1], offset: ?>>
          %w3 = memref.load %w[%ch, %c3] : memref<2x4xf32>
          %p3 = math.fma %t3, %w3, %p2 : f32
          scf.yield %p3 : f32
        }
        memref.store %sum, %out[%y, %x] : memref<13x11xf32>
      }
      "gpu.return"() : () -> ()
    }) {gpu.kernel, gpu.known_block_size = array<i32: 16, 4, 1>, sym_name = "conv3x3"} : () -> ()

    "gpu.func"() <{function_type = (f32, memref<143xf32>, memref<143xf32>, memref<11xf32>) -> ()}> ({
    ^bb0(%a: f32, %xs: memref<143xf32>, %ys: memref<143xf32>, %sums: memref<11xf32>):
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %c4 = arith.constant 4 : index
      %c11 = arith.constant 11 : index
      %inside = arith.cmpi slt, %i, %c11 : index
      scf.if %inside {
        %off = arith.muli %i, %c4 : index
        %vx = vector.load %xs[%off] : memref<143xf32>, vector<4xf32>
        %vy = vector.load %ys[%off] : memref<143xf32>, vector<4xf32>
        %va = vector.broadcast %a : f32 to vector<4xf32>
        %r = vector.fma %va, %vx, %vy : vector<4xf32>
        vector.store %r, %ys[%off] : memref<143xf32>, vector<4xf32>
        %one = arith.constant dense<1.0> : vector<4xf32>
        %last = vector.extract %r[3] : f32 from vector<4xf32>
        %r1 = vector.insert %last, %one [0] : f32 into vector<4xf32>
        %total = vector.reduction <add>, %r1 : vector<4xf32> into f32
        memref.store %total, %sums[%i] : memref<11xf32>
      }
      "gpu.return"() : () -> ()
    }) {gpu.kernel, sym_name = "saxpy4"} : () -> ()

    "gpu.func"() <{function_type = (memref<143xf32>, memref<9xf32>) -> ()}> ({
    ^bb0(%in: memref<143xf32>, %out: memref<9xf32>):
      %t = "gpu.thread_id"() <{dimension = #gpu<dim x>}> : () -> index
      %g = "gpu.block_id"() <{dimension = #gpu<dim x>}> : () -> index
      %n = "gpu.block_dim"() <{dimension = #gpu<dim x>}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c16 = arith.constant 16 : index
      %c143 = arith.constant 143 : index
      %tile = memref.alloca() : memref<16xf32, #gpu.address_space<workgroup>>
      %base = arith.muli %g, %n : index
      %i = arith.addi %base, %t : index
      %inside = arith.cmpi slt, %i, %c143 : index
      %zero = arith.constant 0.0 : f32
      %v = scf.if %inside -> (f32) {
        %x = memref.load %in[%i] : memref<143xf32>
        scf.yield %x : f32
      } else {
        scf.yield %zero : f32
      }
      memref.store %v, %tile[%t] : memref<16xf32, #gpu.address_space<workgroup>>
      "gpu.barrier"() : () -> ()
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        %s = scf.for %k = %c0 to %c16 step %c1 iter_args(%acc = %zero) -> (f32) {
          %e = memref.load %tile[%k] : memref<16xf32, #gpu.address_space<workgroup>>
          %acc1 = arith.addf %acc, %e : f32
          scf.yield %acc1 : f32
        }
        memref.store %s, %out[%g] : memref<9xf32>
      }
      "gpu.return"() : () -> ()
    }) {gpu.kernel, gpu.known_block_size = array<i32: 16, 1, 1>, sym_name = "group_sum"} : () -> ()
  }) : () -> ()

  func.func @main(%a: memref<143xf32>, %b: memref<143xf32>, %in: memref<2x15x13xf32>, %s: f32,
                  %w: memref<2x4xf32>, %out: memref<13x11xf32>, %sums: memref<11xf32>) -> memref<9xf32> {
    %c1 = arith.constant 1 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c9 = arith.constant 9 : index
    %c16 = arith.constant 16 : index
    %c64 = arith.constant 64 : index
    %c = memref.alloc() : memref<143xf32>
    %groups = memref.alloc() : memref<9xf32>
    "gpu.launch_func"(%c3, %c1, %c1, %c64, %c1, %c1, %a, %b, %c) <{kernel = @kernels::@vadd, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3, 0>}> : (index, index, index, index, index, index, memref<143xf32>, memref<143xf32>, memref<143xf32>) -> ()
    "gpu.launch_func"(%c1, %c1, %c1, %c16, %c1, %c1, %s, %a, %c, %sums) <{kernel = @kernels::@saxpy4, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 4, 0>}> : (index, index, index, index, index, index, f32, memref<143xf32>, memref<143xf32>, memref<11xf32>) -> ()
    "gpu.launch_func"(%c1, %c4, %c1, %c16, %c4, %c1, %in, %w, %out) <{kernel = @kernels::@conv3x3, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3, 0>}> : (index, index, index, index, index, index, memref<2x15x13xf32>, memref<2x4xf32>, memref<13x11xf32>) -> ()
    "gpu.launch_func"(%c9, %c1, %c1, %c16, %c1, %c1, %c, %groups) <{kernel = @kernels::@group_sum, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 0>}> : (index, index, index, index, index, index, memref<143xf32>, memref<9xf32>) -> ()
    return %groups : memref<9xf32>
  }
}

// -----

// f16 memrefs are half pointers, f16 values half, and the program enables cl_khr_fp16
// (`fp16=true`; without it or `fp16_emulation` the module is refused).
// CHECK-LABEL: // OpenCL C 1.2, printed by pconv-mlir
// CHECK-NEXT:  #pragma OPENCL EXTENSION cl_khr_fp16 : enable
// CHECK:       void hscale(__global const half *in, __global half *out, const float s) {
// CHECK:         const half4 v = vload4(0, in + off);
// CHECK-NEXT:    const float4 vf = convert_float4(v);
// CHECK-NEXT:    const float4 vs = (float4)(s);
// CHECK-NEXT:    const float4 m = vf * vs;
// CHECK-NEXT:    const half4 h = convert_half4(m);
// CHECK-NEXT:    vstore4(h, 0, out + off);
// CHECK-NEXT:    const half first = in[off];
// CHECK-NEXT:    const half twice = first * ((half)2.0f);
// CHECK-NEXT:    out[off] = twice;

// `fp16_emulation=true`: the same kernel for devices without cl_khr_fp16, f16 values in float
// rounded to half after each op that can round, f16 memory through vload_half / vstore_half.
// EMU:       float4 pconv_round_half4(const float4 x) {
// EMU-NEXT:    ushort4 bits;
// EMU-NEXT:    vstore_half4_rte(x, 0, (half *)&bits);
// EMU-NEXT:    return vload_half4(0, (const half *)&bits);
// EMU-NEXT:  }
// EMU:       void hscale(__global const half *in, __global half *out, const float s) {
// EMU:         const float4 v = vload_half4(0, in + off);
// EMU-NEXT:    const float4 vf = convert_float4(v);
// EMU-NEXT:    const float4 vs = (float4)(s);
// EMU-NEXT:    const float4 m = vf * vs;
// EMU-NEXT:    const float4 h = pconv_round_half4(convert_float4(m));
// EMU-NEXT:    vstore_half4_rte(h, 0, out + off);
// EMU-NEXT:    const float first = vload_half(off, in);
// EMU-NEXT:    const float twice = pconv_round_half(first * 2.0f);
// EMU-NEXT:    vstore_half_rte(twice, off, out);
// FP16: opencl-target.mlir:[[# @LINE + 4]]:5: error: 'gpu.func' op uses f16, which needs the fp16 option (cl_khr_fp16) or fp16_emulation

module attributes {gpu.container_module} {
  "gpu.module"() <{sym_name = "half_kernels"}> ({
    "gpu.func"() <{function_type = (memref<40xf16>, memref<40xf16>, f32) -> ()}> ({
    ^bb0(%in: memref<40xf16>, %out: memref<40xf16>, %s: f32):
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %c4 = arith.constant 4 : index
      %off = arith.muli %i, %c4 : index
      %v = vector.load %in[%off] : memref<40xf16>, vector<4xf16>
      %vf = arith.extf %v : vector<4xf16> to vector<4xf32>
      %vs = vector.broadcast %s : f32 to vector<4xf32>
      %m = arith.mulf %vf, %vs : vector<4xf32>
      %h = arith.truncf %m : vector<4xf32> to vector<4xf16>
      vector.store %h, %out[%off] : memref<40xf16>, vector<4xf16>
      %first = memref.load %in[%off] : memref<40xf16>
      %two = arith.constant 2.0 : f16
      %twice = arith.mulf %first, %two : f16
      memref.store %twice, %out[%off] : memref<40xf16>
      "gpu.return"() : () -> ()
    }) {gpu.kernel, sym_name = "hscale"} : () -> ()
  }) : () -> ()
}

// -----

// An op without an OpenCL C 1.2 equivalent is one located diagnostic.
// CHECK: opencl-target.mlir:[[# @LINE + 6]]:7: error: 'gpu.subgroup_id' op cannot be printed as OpenCL C 1.2

module attributes {gpu.container_module} {
  "gpu.module"() <{sym_name = "subgroups"}> ({
    "gpu.func"() <{function_type = (memref<4xindex>) -> ()}> ({
    ^bb0(%out: memref<4xindex>):
      %sg = "gpu.subgroup_id"() : () -> index
      %c0 = arith.constant 0 : index
      memref.store %sg, %out[%c0] : memref<4xindex>
      "gpu.return"() : () -> ()
    }) {gpu.kernel, sym_name = "subgroup"} : () -> ()
  }) : () -> ()
}

// -----

// The launch description needs constant grid and block sizes.
// LAUNCH: opencl-target.mlir:[[# @LINE + 14]]:5: error: 'gpu.launch_func' op the grid size is not a constant

module attributes {gpu.container_module} {
  "gpu.module"() <{sym_name = "dynamic"}> ({
    "gpu.func"() <{function_type = (memref<8xf32>) -> ()}> ({
    ^bb0(%out: memref<8xf32>):
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %one = arith.constant 1.0 : f32
      memref.store %one, %out[%i] : memref<8xf32>
      "gpu.return"() : () -> ()
    }) {gpu.kernel, sym_name = "fill"} : () -> ()
  }) : () -> ()
  func.func @launch(%out: memref<8xf32>, %n: index) {
    %c1 = arith.constant 1 : index
    "gpu.launch_func"(%n, %c1, %c1, %c1, %c1, %c1, %out) <{kernel = @dynamic::@fill, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0>}> : (index, index, index, index, index, index, memref<8xf32>) -> ()
    return
  }
}
