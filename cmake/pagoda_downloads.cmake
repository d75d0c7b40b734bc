# Where the build keeps the source archives it fetches (xgrammar, llama-cpp-python): the project's cache,
# ${PAGODA_CACHE:-~/.cache/pagoda}/downloads, shared by every build folder, as scripts/lib.sh places the model.
if(DEFINED ENV{PAGODA_CACHE} AND NOT "$ENV{PAGODA_CACHE}" STREQUAL "")
  set(PAGODA_DOWNLOAD_DIR "$ENV{PAGODA_CACHE}/downloads")
else()
  set(PAGODA_DOWNLOAD_DIR "$ENV{HOME}/.cache/pagoda/downloads")
endif()
