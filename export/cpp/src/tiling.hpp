// Tiled super-resolution on the host, the same algorithm as edgesr.inference.tiling (Python):
// equal-sized tile cores, `halo` pixels of real context around each core (clipped at the image border),
// tile inputs mirror-padded at the bottom/right up to the model's minimum size and alignment, and only
// each tile's core kept from the output. Tiles come from host memory one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "png_io.hpp"

namespace edgesr {

// One model call: `in` is planar float RGB 0..1 (3 x h x w), `out` must receive 3 x (h*scale) x (w*scale).
using SRFunction = std::function<void(const std::vector<float>& in, int h, int w, std::vector<float>& out)>;

struct TileConfig {
    int tile = 0;      // core size in LR pixels; 0 = whole image at once
    int halo = 16;     // context pixels on each side
    int align = 1;     // tile inputs padded to a multiple of this
    int min_size = 1;  // tile inputs padded up to this
};

struct TilePlan {
    TileConfig config;
    std::string note;  // why the tile size was lowered, if it was
};

// Tile size that keeps every tile input (core + 2 * halo, padded) within an engine profile's max H/W and pads
// small tiles to its min H/W. max_h/max_w <= 0: no maximum. Throws std::runtime_error when nothing fits.
TilePlan fit_tile(int tile, int halo, int min_h, int min_w, int max_h, int max_w, int align, int min_size);

// Equal-sized [start, end) spans of at most `tile` covering `length` (edgesr's _spans).
std::vector<std::pair<int, int>> spans(int length, int tile);

// Mirror-pad planar 3 x h x w to 3 x th x tw at the bottom/right.
std::vector<float> pad_planar(const std::vector<float>& x, int h, int w, int th, int tw);

// Upscale `lr` with `fn` tile by tile; `tiles_run` (optional) receives the number of model calls.
ImageRGB8 upscale_tiled(const ImageRGB8& lr, int scale, const TileConfig& config, const SRFunction& fn,
                        int* tiles_run = nullptr);

}  // namespace edgesr
