# llama.cpp's Jinja engine (MIT; common/jinja, written for the Hugging Face chat templates GGUFs carry):
# renders the model's own chat template (engine/tokenizer/chat_template.cpp). It comes from the same
# pinned PyPI sdist of llama-cpp-python the project already uses as its oracle: one download into
# ${PAGODA_CACHE:-~/.cache/pagoda}/downloads, checked against its sha256, reused by every build folder;
# only the files needed are unpacked (the engine, its JSON and UTF-8 helpers; and, as test data, llama.cpp's
# collection of real chat templates and a few of its vocabulary-only GGUFs). PAGODA_LLAMA_CPP_SOURCE_DIR points at
# an unpacked vendor/llama.cpp instead (no network).
set(PAGODA_LLAMA_CPP_PYTHON_VERSION 0.3.36)
set(PAGODA_LLAMA_CPP_PYTHON_URL
    "https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz")
set(PAGODA_LLAMA_CPP_PYTHON_SHA256 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e)
set(PAGODA_LLAMA_CPP_SOURCE_DIR "" CACHE PATH
    "An unpacked vendor/llama.cpp of llama-cpp-python ${PAGODA_LLAMA_CPP_PYTHON_VERSION} (empty: download the sdist)")

if(PAGODA_LLAMA_CPP_SOURCE_DIR)
  set(_llama_dir "${PAGODA_LLAMA_CPP_SOURCE_DIR}")
else()
  include(${CMAKE_CURRENT_LIST_DIR}/pagoda_downloads.cmake)
  set(_sdist "${PAGODA_DOWNLOAD_DIR}/llama_cpp_python-${PAGODA_LLAMA_CPP_PYTHON_VERSION}.tar.gz")
  # Build folders configured at once (build, build-asan, build-fuzz ...) share the download.
  file(MAKE_DIRECTORY "${PAGODA_DOWNLOAD_DIR}")
  file(LOCK "${_sdist}.lock" GUARD FILE TIMEOUT 1800)
  if(EXISTS "${_sdist}")
    file(SHA256 "${_sdist}" _have)
    if(NOT _have STREQUAL PAGODA_LLAMA_CPP_PYTHON_SHA256)
      message(STATUS "llama-cpp-python sdist: ${_sdist} has the wrong sha256; downloading it again")
      file(REMOVE "${_sdist}")
    endif()
  endif()
  if(NOT EXISTS "${_sdist}")
    message(STATUS "llama-cpp-python ${PAGODA_LLAMA_CPP_PYTHON_VERSION} sdist (76 MB): downloading to ${_sdist}")
    file(DOWNLOAD "${PAGODA_LLAMA_CPP_PYTHON_URL}" "${_sdist}.part"
         EXPECTED_HASH SHA256=${PAGODA_LLAMA_CPP_PYTHON_SHA256} STATUS _status TLS_VERIFY ON)
    list(GET _status 0 _code)
    if(NOT _code EQUAL 0)
      file(REMOVE "${_sdist}.part")
      message(FATAL_ERROR "downloading ${PAGODA_LLAMA_CPP_PYTHON_URL} failed: ${_status}")
    endif()
    file(RENAME "${_sdist}.part" "${_sdist}")
  endif()
  file(LOCK "${_sdist}.lock" RELEASE)
  # What to unpack; the stamp names it, so a change here (or an interrupted unpack) unpacks again.
  set(_prefix "llama_cpp_python-${PAGODA_LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp")
  set(_patterns
      "${_prefix}/common/jinja" "${_prefix}/common/json.*" "${_prefix}/common/unicode.*" "${_prefix}/LICENSE"
      "${_prefix}/models/templates")
  # Vocabulary-only GGUFs with llama.cpp's tokenizer cases (.inp/.out), for the tokenizer tests.
  foreach(_vocab llama-spm llama-bpe phi-3 qwen2 qwen35 gemma-4 starcoder deepseek-coder deepseek-llm falcon gpt-2
                 mpt refact command-r)
    list(APPEND _patterns "${_prefix}/models/ggml-vocab-${_vocab}.gguf*")
  endforeach()
  string(SHA256 _what "${PAGODA_LLAMA_CPP_PYTHON_SHA256};${_patterns}")
  set(_root "${CMAKE_BINARY_DIR}/_deps/llama_jinja-src")
  set(_stamp "${_root}/unpacked-${_what}")
  set(_llama_dir "${_root}/${_prefix}")
  if(NOT EXISTS "${_stamp}")
    file(REMOVE_RECURSE "${_root}")
    file(ARCHIVE_EXTRACT INPUT "${_sdist}" DESTINATION "${_root}" PATTERNS ${_patterns})
    file(TOUCH "${_stamp}")
  endif()
endif()
if(NOT EXISTS "${_llama_dir}/common/jinja/runtime.cpp")
  message(FATAL_ERROR "llama.cpp's Jinja engine not found in '${_llama_dir}/common/jinja'")
endif()
# Real chat templates (Qwen, Llama 3.x, Mistral, Phi, Gemma, Hermes ...) and vocabularies, for the tests.
set(PAGODA_CHAT_TEMPLATES_DIR "${_llama_dir}/models/templates" CACHE INTERNAL "")
set(PAGODA_LLAMA_MODELS_DIR "${_llama_dir}/models" CACHE INTERNAL "")

# Local fixes, compiled from a copy of common/jinja in the build folder (the unpacked or given tree stays
# as it is): the engine converts doubles to int64_t with a bare cast, which is undefined behaviour past
# +-2^63, and a client's tools JSON or a template's arithmetic can reach it (tests/fuzz chat_template_fuzz
# found a JSON number of 6.7e76). Out of range now gives 0, as non-finite values already did in the one
# place that checked. The copy's folder comes first on the include path, so "jinja/value.h" is the fixed
# one everywhere.
set(_jinja_copy "${CMAKE_BINARY_DIR}/_deps/llama_jinja-fixed")
set(_jinja_fixed value.h value.cpp runtime.cpp)
file(GLOB _jinja_files RELATIVE "${_llama_dir}/common/jinja" "${_llama_dir}/common/jinja/*")
foreach(_f ${_jinja_files})
  if(NOT _f IN_LIST _jinja_fixed)
    file(COPY "${_llama_dir}/common/jinja/${_f}" DESTINATION "${_jinja_copy}/jinja")
  endif()
endforeach()
foreach(_f ${_jinja_fixed})
  file(READ "${_llama_dir}/common/jinja/${_f}" _text_${_f})
endforeach()
# Replaces `from` (which must be there) by `to` in the text of common/jinja/<file>.
macro(pagoda_jinja_fix file from to)
  string(FIND "${_text_${file}}" "${from}" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "cmake/llama_jinja.cmake: '${from}' is no longer in common/jinja/${file}; revisit the fix")
  endif()
  string(REPLACE "${from}" "${to}" _text_${file} "${_text_${file}}")
endmacro()
set(_in_range "std::isfinite(X) && X >= -9223372036854775808.0 && X < 9223372036854775808.0")
foreach(_x v res rem f)
  string(REPLACE "X" "${_x}" _in_range_${_x} "${_in_range}")
endforeach()
pagoda_jinja_fix(value.h "val_int = std::isfinite(v) ? static_cast<int64_t>(v) : 0;"
                 "val_int = ${_in_range_v} ? static_cast<int64_t>(v) : 0;")
pagoda_jinja_fix(value.cpp "int64_t val = static_cast<int64_t>(args.get_pos(0)->as_float());"
                 "const double f = args.get_pos(0)->as_float(); int64_t val = ${_in_range_f} ? static_cast<int64_t>(f) : 0;")
pagoda_jinja_fix(runtime.cpp "return mk_val<value_int>(static_cast<int64_t>(res));"
                 "return mk_val<value_int>(${_in_range_res} ? static_cast<int64_t>(res) : 0);")
pagoda_jinja_fix(runtime.cpp "return mk_val<value_int>(static_cast<int64_t>(rem));"
                 "return mk_val<value_int>(${_in_range_rem} ? static_cast<int64_t>(rem) : 0);")
foreach(_f ${_jinja_fixed})  # written only when changed, so a reconfigure rebuilds nothing
  set(_old "")
  if(EXISTS "${_jinja_copy}/jinja/${_f}")
    file(READ "${_jinja_copy}/jinja/${_f}" _old)
  endif()
  if(NOT _old STREQUAL _text_${_f})
    file(WRITE "${_jinja_copy}/jinja/${_f}" "${_text_${_f}}")
  endif()
endforeach()
add_library(llama_jinja STATIC
  "${_jinja_copy}/jinja/caps.cpp"
  "${_jinja_copy}/jinja/lexer.cpp"
  "${_jinja_copy}/jinja/parser.cpp"
  "${_jinja_copy}/jinja/runtime.cpp"
  "${_jinja_copy}/jinja/string.cpp"
  "${_jinja_copy}/jinja/value.cpp"
  "${_llama_dir}/common/json.cpp"
  "${_llama_dir}/common/unicode.cpp")
# common/json.cpp includes ggml.h for GGML_ASSERT alone: cmake/llama_jinja/ggml.h stands in for it.
target_include_directories(llama_jinja SYSTEM BEFORE PUBLIC "${_jinja_copy}" "${_llama_dir}/common")
target_include_directories(llama_jinja PRIVATE "${CMAKE_CURRENT_LIST_DIR}/llama_jinja")
include(${CMAKE_CURRENT_LIST_DIR}/third_party_options.cmake)
pagoda_third_party_options(llama_jinja -O2 OFF)
set_target_properties(llama_jinja PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_STANDARD 17)
