#pragma once
// Stands in for ggml.h when llama.cpp's common/json.cpp is built for its Jinja engine
// (cmake/llama_jinja.cmake): that file needs GGML_ASSERT alone.
#include <cstdio>
#include <cstdlib>

#define GGML_ASSERT(x)                                                                   \
  do {                                                                                   \
    if (!(x)) {                                                                          \
      std::fprintf(stderr, "%s:%d: GGML_ASSERT(%s) failed\n", __FILE__, __LINE__, #x); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
