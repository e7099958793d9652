"""pconv_mlir/tools"""
