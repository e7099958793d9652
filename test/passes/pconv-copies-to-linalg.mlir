// RUN: pconv-opt %s -p pconv-copies-to-linalg | filecheck %s
// RUN: pconv-opt %s -p pconv-copies-to-linalg | pconv-opt | filecheck %s

// A zero pad: a fill of the padded shape, the source copied into its slice at `low`.
// CHECK-LABEL: func.func @pad
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<1x2x7x6xf32>
// CHECK-NEXT:    %[[F:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[E]] : tensor<1x2x7x6xf32>) -> tensor<1x2x7x6xf32>
// CHECK-NEXT:    %[[S:.*]] = tensor.extract_slice %[[F]][0, 0, 1, 2] [1, 2, 5, 3] [1, 1, 1, 1] : tensor<1x2x7x6xf32> to tensor<1x2x5x3xf32>
// CHECK-NEXT:    %[[C:.*]] = linalg.copy ins(%x : tensor<1x2x5x3xf32>) outs(%[[S]] : tensor<1x2x5x3xf32>) -> tensor<1x2x5x3xf32>
// CHECK-NEXT:    %[[P:.*]] = tensor.insert_slice %[[C]] into %[[F]][0, 0, 1, 2] [1, 2, 5, 3] [1, 1, 1, 1] : tensor<1x2x5x3xf32> into tensor<1x2x7x6xf32>
// CHECK-NEXT:    func.return %[[P]]
func.func @pad(%x: tensor<1x2x5x3xf32>) -> tensor<1x2x7x6xf32> {
  %zero = arith.constant 0.0 : f32
  %p = tensor.pad %x low[0, 0, 1, 2] high[0, 0, 1, 1] {
  ^bb0(%a: index, %b: index, %c: index, %d: index):
    tensor.yield %zero : f32
  } : tensor<1x2x5x3xf32> to tensor<1x2x7x6xf32>
  func.return %p : tensor<1x2x7x6xf32>
}

// A max-pool's -inf pad whose constant sits in the region: moved out before the fill.
// CHECK-LABEL: func.func @pad_value_in_region
// CHECK-NEXT:    %[[NINF:.*]] = arith.constant 0xff800000 : f32
// CHECK-NEXT:    tensor.empty() : tensor<1x1x4x4xf32>
// CHECK-NEXT:    linalg.fill ins(%[[NINF]] : f32)
// CHECK-NOT:     tensor.pad
func.func @pad_value_in_region(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x4x4xf32> {
  %p = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%a: index, %b: index, %c: index, %d: index):
    %ninf = arith.constant 0xff800000 : f32
    tensor.yield %ninf : f32
  } : tensor<1x1x2x2xf32> to tensor<1x1x4x4xf32>
  func.return %p : tensor<1x1x4x4xf32>
}

// A concat: each input copied into its slice of one empty tensor, at its offset along dim 1.
// CHECK-LABEL: func.func @concat
// CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<1x5x3xf32>
// CHECK-NEXT:    %[[S0:.*]] = tensor.extract_slice %[[E]][0, 0, 0] [1, 2, 3] [1, 1, 1]
// CHECK-NEXT:    %[[C0:.*]] = linalg.copy ins(%a : tensor<1x2x3xf32>) outs(%[[S0]] : tensor<1x2x3xf32>)
// CHECK-NEXT:    %[[I0:.*]] = tensor.insert_slice %[[C0]] into %[[E]][0, 0, 0] [1, 2, 3] [1, 1, 1]
// CHECK-NEXT:    %[[S1:.*]] = tensor.extract_slice %[[I0]][0, 2, 0] [1, 3, 3] [1, 1, 1]
// CHECK-NEXT:    %[[C1:.*]] = linalg.copy ins(%b : tensor<1x3x3xf32>) outs(%[[S1]] : tensor<1x3x3xf32>)
// CHECK-NEXT:    %[[I1:.*]] = tensor.insert_slice %[[C1]] into %[[I0]][0, 2, 0] [1, 3, 3] [1, 1, 1]
// CHECK-NEXT:    func.return %[[I1]]
func.func @concat(%a: tensor<1x2x3xf32>, %b: tensor<1x3x3xf32>) -> tensor<1x5x3xf32> {
  %c = tensor.concat dim(1) %a, %b : (tensor<1x2x3xf32>, tensor<1x3x3xf32>) -> tensor<1x5x3xf32>
  func.return %c : tensor<1x5x3xf32>
}

// A buffer copy becomes a linalg.copy (a kernel on the GPU path).
// CHECK-LABEL: func.func @buffer_copy
// CHECK-NEXT:    linalg.copy ins(%a : memref<4x3xf32>) outs(%b : memref<4x3xf32>)
// CHECK-NEXT:    func.return
func.func @buffer_copy(%a: memref<4x3xf32>, %b: memref<4x3xf32>) {
  "memref.copy"(%a, %b) : (memref<4x3xf32>, memref<4x3xf32>) -> ()
  func.return
}

// Left alone: a pad value computed from the region's indices, and a dynamic concat.
// CHECK-LABEL: func.func @left_alone
// CHECK:         tensor.pad
// CHECK:         tensor.concat
func.func @left_alone(%x: tensor<2xf32>, %d: tensor<?xf32>) -> (tensor<4xf32>, tensor<?xf32>) {
  %p = tensor.pad %x low[1] high[1] {
  ^bb0(%i: index):
    %c = arith.index_cast %i : index to i32
    %f = arith.sitofp %c : i32 to f32
    tensor.yield %f : f32
  } : tensor<2xf32> to tensor<4xf32>
  %c = tensor.concat dim(0) %d, %x : (tensor<?xf32>, tensor<2xf32>) -> tensor<?xf32>
  func.return %p, %c : tensor<4xf32>, tensor<?xf32>
}

// A copy of a buffer to itself is erased.
// CHECK-LABEL: func.func @self_copy
// CHECK-NEXT:    func.return
func.func @self_copy(%a: memref<4x3xf32>) {
  "memref.copy"(%a, %a) : (memref<4x3xf32>, memref<4x3xf32>) -> ()
  func.return
}
