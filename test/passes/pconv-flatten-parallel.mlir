// RUN: pconv-opt %s -p pconv-flatten-parallel | filecheck %s

// A 3-dim loop with a lower bound and a step: one loop over its 2 x 3 x 4 = 24 iterations,
// each index recovered by a division and a remainder (then scaled and shifted).
// CHECK-LABEL: func.func @three_dims
// CHECK:         %c9 = arith.constant 9 : index
// CHECK-NEXT:    %[[Z:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[O:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[N:.*]] = arith.constant 24 : index
// CHECK-NEXT:    "scf.parallel"(%[[Z]], %[[N]], %[[O]]) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
// CHECK-NEXT:    ^bb0(%[[I:.*]]: index):
// CHECK-NEXT:      %[[C12:.*]] = arith.constant 12 : index
// CHECK-NEXT:      %[[A:.*]] = arith.divui %[[I]], %[[C12]] : index
// CHECK-NEXT:      %[[C4:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %[[B0:.*]] = arith.divui %[[I]], %[[C4]] : index
// CHECK-NEXT:      %[[C3:.*]] = arith.constant 3 : index
// CHECK-NEXT:      %[[B:.*]] = arith.remui %[[B0]], %[[C3]] : index
// CHECK-NEXT:      %[[C4B:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %[[C0:.*]] = arith.remui %[[I]], %[[C4B]] : index
// CHECK-NEXT:      %[[TWO:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[C1:.*]] = arith.muli %[[C0]], %[[TWO]] : index
// CHECK-NEXT:      %[[ONE:.*]] = arith.constant 1 : index
// CHECK-NEXT:      %[[C:.*]] = arith.addi %[[C1]], %[[ONE]] : index
// CHECK-NEXT:      memref.store %v, %m[%[[A]], %[[B]], %[[C]]]
func.func @three_dims(%m: memref<2x3x9xf32>, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c9 = arith.constant 9 : index
  "scf.parallel"(%c0, %c0, %c1, %c2, %c3, %c9, %c1, %c1, %c2) <{operandSegmentSizes = array<i32: 3, 3, 3, 0>}> ({
  ^bb0(%a: index, %b: index, %c: index):
    memref.store %v, %m[%a, %b, %c] : memref<2x3x9xf32>
    "scf.reduce"() : () -> ()
  }) : (index, index, index, index, index, index, index, index, index) -> ()
  func.return
}

// Left alone: one dim, and a dynamic bound.
// CHECK-LABEL: func.func @left_alone
// CHECK:         "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}>
// CHECK:         "scf.parallel"(%c0, %c0, %c4, %n, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}>
func.func @left_alone(%m: memref<4x?xf32>, %v: f32, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%a: index):
    memref.store %v, %m[%a, %a] : memref<4x?xf32>
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  "scf.parallel"(%c0, %c0, %c4, %n, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%a: index, %b: index):
    memref.store %v, %m[%a, %b] : memref<4x?xf32>
    "scf.reduce"() : () -> ()
  }) : (index, index, index, index, index, index) -> ()
  func.return
}
