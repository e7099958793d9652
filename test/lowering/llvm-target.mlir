// RUN: pconv-opt %s -t llvm-ir | filecheck %s
// RUN: pconv-opt %s -t 'llvm-ir{backend=aarch64}' | filecheck %s --check-prefixes=CHECK,AARCH64
// RUN: pconv-opt %s -t 'llvm-ir{backend=x86_64 opt_level=0}' | filecheck %s --check-prefixes=CHECK,X86

// The llvm target prints LLVM IR with the target's triple and data layout; memrefs are passed as
// bare pointers, scalars by value, index as i64.

// CHECK:        target datalayout =
// AARCH64-SAME:   "e-m:e-p270:32:32-p271:32:32-p272:64:64-i8:8:32-i16:16:32-i64:64-i128:128-n32:64-S128-Fn32"
// CHECK:        target triple =
// AARCH64-SAME:   "aarch64-unknown-linux-gnu"
// X86-SAME:       "x86_64-pc-linux-gnu"

// CHECK-LABEL: define void @saxpy(float %0, ptr %1, ptr %2)
// CHECK:         load <8 x float>
// CHECK:         call <8 x float> @llvm.fmuladd.v8f32
// CHECK:         store <8 x float>
func.func @saxpy(%a: f32, %x: memref<67xf32>, %y: memref<67xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %c67 = arith.constant 67 : index
  %va = vector.broadcast %a : f32 to vector<8xf32>
  scf.for %i = %c0 to %c64 step %c8 {
    %vx = vector.load %x[%i] : memref<67xf32>, vector<8xf32>
    %vy = vector.load %y[%i] : memref<67xf32>, vector<8xf32>
    %r = vector.fma %va, %vx, %vy : vector<8xf32>
    vector.store %r, %y[%i] : memref<67xf32>, vector<8xf32>
  }
  scf.for %i = %c64 to %c67 step %c1 {
    %sx = memref.load %x[%i] : memref<67xf32>
    %sy = memref.load %y[%i] : memref<67xf32>
    %m = arith.mulf %a, %sx : f32
    %s = arith.addf %m, %sy : f32
    memref.store %s, %y[%i] : memref<67xf32>
  }
  return
}

// CHECK-LABEL: define float @dot(ptr %0, ptr %1, i64 %2)
// CHECK:         fmul float
// CHECK:         fadd float
// CHECK:         ret float
func.func @dot(%x: memref<67xf32>, %y: memref<67xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %sum = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %zero) -> (f32) {
    %a = memref.load %x[%i] : memref<67xf32>
    %b = memref.load %y[%i] : memref<67xf32>
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    scf.yield %s : f32
  }
  return %sum : f32
}

// Calls between generated functions pass bare pointers too.
// CHECK-LABEL: define void @uses_helper(ptr %0)
// CHECK:         call void @helper(ptr
func.func @uses_helper(%x: memref<4xf32>) {
  func.call @helper(%x) : (memref<4xf32>) -> ()
  return
}
func.func private @helper(%x: memref<4xf32>) {
  return
}
