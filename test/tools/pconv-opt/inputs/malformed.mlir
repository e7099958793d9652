// A constant without its value.
func.func @f() {
  %x = arith.constant : i32
  func.return
}
