// A splat of 2^32 elements: refused before xDSL expands it.
func.func @f() -> tensor<65536x65536xf32> {
  %c = arith.constant dense<1.0> : tensor<65536x65536xf32>
  func.return %c : tensor<65536x65536xf32>
}
