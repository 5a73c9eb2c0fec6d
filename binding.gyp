{
  "targets": [
    {
      "target_name": "scan_backends",
      "sources": [
        "native/binding.cc",
        "<!@(node -p \"require('fs').readFileSync('native/core-sources.txt','utf8').split('\\n').filter(l=>/^[^#]/.test(l)).join(' ')\")"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "conditions": [
        ["OS=='linux'", {"sources": ["native/core/poller_epoll.cc"]}],
        ["OS=='mac'", {
          "sources": ["native/core/poller_kqueue.cc"],
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "10.15"
          }
        }],
        ["OS=='freebsd' or OS=='openbsd'", {"sources": ["native/core/poller_kqueue.cc"]}]
      ]
    }
  ]
}
