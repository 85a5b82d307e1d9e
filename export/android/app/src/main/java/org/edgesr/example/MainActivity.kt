package org.edgesr.example

import android.app.Activity
import android.graphics.BitmapFactory
import android.os.Bundle
import android.os.SystemClock
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.TextView
import java.io.File

/**
 * Copies the artifact, its sidecar and `input.png` out of the APK's assets, upscales the image on a
 * background thread and shows the result with the time it took.
 *
 * assets/ must hold one edgesr sidecar (`*.json`), the files it names (`artifact.file`, and for ncnn
 * `ncnn.bin.file`) and `input.png`.
 */
class MainActivity : Activity() {

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val status = TextView(this).apply { text = "loading..." }
        val image = ImageView(this).apply { adjustViewBounds = true }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(status)
            addView(image)
        })
        Thread {
            val message = try {
                val sidecar = copyAssets()
                val input = BitmapFactory.decodeFile(File(filesDir, "input.png").absolutePath)
                    ?: error("assets/input.png is missing or not an image")
                Upscaler(sidecar, threads = 2).use { up ->
                    val start = SystemClock.elapsedRealtime()
                    val output = up.upscale(input) { done, total ->
                        runOnUiThread { status.text = "${up.format}: tile $done / $total" }
                    }
                    val ms = SystemClock.elapsedRealtime() - start
                    runOnUiThread { image.setImageBitmap(output) }
                    "${up.format} x${up.scale}: ${input.width}x${input.height} -> ${output.width}x${output.height} " +
                        "in $ms ms (tile ${up.tile}, halo ${up.halo})"
                }
            } catch (e: Exception) {
                "error: ${e.message}"
            }
            runOnUiThread { status.text = message }
        }.start()
    }

    /** Copy every asset to files/ (models must be files for ncnn); return the sidecar. */
    private fun copyAssets(): File {
        val names = assets.list("")?.filter { it.isNotEmpty() && !it.startsWith(".") } ?: emptyList()
        for (name in names) {
            try {
                assets.open(name).use { src -> File(filesDir, name).outputStream().use { src.copyTo(it) } }
            } catch (e: java.io.IOException) {
                // a folder (e.g. images/ of the platform): skip
            }
        }
        val sidecar = names.firstOrNull { it.endsWith(".json") } ?: error("no sidecar (*.json) in assets/")
        return File(filesDir, sidecar)
    }
}
