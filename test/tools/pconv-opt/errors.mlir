// Bad input gives one diagnostic line with its location and exit code 1, never a traceback.

// A malformed file.
// RUN: not pconv-opt %S/inputs/malformed.mlir 2>&1 | filecheck %s --check-prefix=MALFORMED
// MALFORMED: inputs/malformed.mlir:3:23: error: attribute expected
// MALFORMED-NOT: Traceback

// An unknown pass.
// RUN: not pconv-opt %s -p 'canonicalize,pconv-nope' 2>&1 | filecheck %s --check-prefix=PASS
// PASS: <pass-pipeline>:1:14: error: 'pconv-nope' does not refer to a registered pass
// PASS-NOT: Traceback

// A pass option out of range.
// RUN: not pconv-opt %s -p 'cse,pconv-fkr{group_size=0}' 2>&1 | filecheck %s --check-prefix=OPTION
// OPTION: <pass-pipeline>:1:5: error: bad options for 'pconv-fkr': group_size = 0 must be at least 1
// OPTION-NOT: Traceback

// A pattern id out of range.
// RUN: not pconv-opt %S/inputs/bad-pattern-id.mlir 2>&1 | filecheck %s --check-prefix=ID
// ID: inputs/bad-pattern-id.mlir:5:3: error: 'pconv.conv2d' op kernel (0, 1) has pattern id 2, the set has 2 patterns (ids -1..1)
// ID-NOT: Traceback

// A missing file.
// RUN: not pconv-opt %S/inputs/no-such-file.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: inputs/no-such-file.mlir: error: could not open input file: No such file or directory

// An output file in a folder that does not exist.
// RUN: not pconv-opt %s -o %t.no-such-folder/out.mlir 2>&1 | filecheck %s --check-prefix=WRITE
// WRITE: no-such-folder/out.mlir: error: could not write: No such file or directory

// An output file is not written when the run fails.
// RUN: rm -f %t.out
// RUN: not pconv-opt %S/inputs/bad-pattern-id.mlir -o %t.out
// RUN: not ls %t.out

func.func @ok() {
  func.return
}
