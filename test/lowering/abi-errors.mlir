// RUN: not pconv-opt %s -t llvm-ir 2>&1 | filecheck %s

// The bare-pointer ABI needs static shapes at public function boundaries.
// CHECK: argument 0 of @dynamic has dynamic shape memref<?xf32>; the bare-pointer ABI needs static shapes
func.func @dynamic(%x: memref<?xf32>) {
  return
}
