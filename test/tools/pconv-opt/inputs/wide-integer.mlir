// Wider than MLIR's integer types may be.
func.func @f() {
  %c = arith.constant 1 : i1000000000
  func.return
}
