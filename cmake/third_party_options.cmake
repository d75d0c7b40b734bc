# Included by cmake/xgrammar.cmake and cmake/llama_jinja.cmake (the latter also from tests/fuzz/).
include_guard(GLOBAL)

# Third-party libraries compiled here (xgrammar, llama.cpp's Jinja engine): `opt` is their own optimisation
# level in a normal build. A sanitizer build compiles them at its -O1 instead (their -O3 with ASan took
# 2.2x as long: xgrammar and Jinja were a third of the ASan build). `asan_instrumented` OFF leaves a
# library uninstrumented under ASan + UBSan, as the system libraries are: no false reports, only what it
# does itself goes unchecked. That is the Jinja engine, which the fuzz stage instruments with clang;
# xgrammar stays instrumented (it parses clients' schemas and writes our token bitmasks). Under TSan both
# stay instrumented: uninstrumented code that synchronises through atomics (a shared_ptr's count) would
# show as false races in the code that is.
function(pagoda_third_party_options target opt asan_instrumented)
  if(PAGODA_SANITIZE MATCHES "address|undefined" AND NOT asan_instrumented)
    target_compile_options(${target} PRIVATE -fno-sanitize=all -g0)
  elseif(NOT PAGODA_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<NOT:$<CONFIG:Debug>>:${opt}>)
  endif()
  target_compile_options(${target} PRIVATE -w)  # their warnings are not ours to fix
endfunction()
