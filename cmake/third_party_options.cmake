# Included by cmake/xgrammar.cmake and cmake/llama_jinja.cmake (the latter also from tests/fuzz/).
include_guard(GLOBAL)

# Third-party libraries compiled here (xgrammar, llama.cpp's Jinja engine): `opt` is their own optimisation
# level in a normal build. A sanitizer build compiles them at its -O1 instead (their -O3 with ASan took
# 2.2x as long: xgrammar and Jinja were a third of the ASan build). Under ASan + UBSan they are also left
# uninstrumented, as the system libraries are: that is safe under ASan (no false reports, only what they
# do themselves goes unchecked), the fuzz stage instruments the Jinja engine with clang, and it makes
# them 4x quicker to build. Under TSan they stay instrumented: uninstrumented code that synchronises
# through atomics (a shared_ptr's count) would show as false races in the code that is instrumented.
function(pagoda_third_party_options target opt)
  if(PAGODA_SANITIZE MATCHES "address|undefined")
    target_compile_options(${target} PRIVATE -fno-sanitize=all -g0)
  elseif(NOT PAGODA_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<NOT:$<CONFIG:Debug>>:${opt}>)
  endif()
  target_compile_options(${target} PRIVATE -w)  # their warnings are not ours to fix
endfunction()
