// Draws every plot of a dashboard page with Chart.js (vendor/chart.umd.min.js, served from this site).
// Each <canvas data-plot="NAME"> has beside it a JSON data block #plot-data-NAME (Django's json_script): the
// plot's title, axes, series and the very rows its CSV download holds. No inline script: the page's
// Content-Security-Policy forbids it.
(function () {
  "use strict";

  const PALETTE = ["#4a9eda", "#f0a04b", "#7cc47c", "#d46a6a", "#b48ce0", "#e0d46a", "#6ad4cf", "#c8c8c8"];
  const FAINT = "rgba(74, 158, 218, 0.35)";

  function colour(index) {
    return PALETTE[index % PALETTE.length];
  }

  function axis(title, extra) {
    return Object.assign({ title: { display: true, text: title }, grid: { color: "#2a2a2a" } }, extra || {});
  }

  function uniqueInOrder(values) {
    const seen = new Set();
    const out = [];
    for (const value of values) {
      if (!seen.has(value)) {
        seen.add(value);
        out.push(value);
      }
    }
    return out;
  }

  function categoryConfig(spec, options) {
    const stacked = options.stacked || false;
    const horizontal = options.horizontal || false;
    const labels = spec.rows.map((row) => String(row[spec.x]));
    const datasets = spec.series.map((series, index) => ({
      label: series.label,
      data: spec.rows.map((row) => row[series.key]),
      backgroundColor: colour(index),
      borderColor: colour(index),
    }));
    const category = axis(spec.x_label, { stacked: stacked });
    const value = axis(spec.y_label, { stacked: stacked, beginAtZero: true });
    return {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        scales: horizontal ? { x: value, y: category } : { x: category, y: value },
      },
    };
  }

  function lineConfig(spec) {
    if (!spec.group) {
      const config = categoryConfig(spec, {});
      config.type = "line";
      config.data.datasets.forEach((dataset) => {
        dataset.spanGaps = true;
        dataset.backgroundColor = dataset.borderColor;
      });
      config.options.scales.y.beginAtZero = false;
      return config;
    }
    const labels = uniqueInOrder(spec.rows.map((row) => String(row[spec.x]))).sort();
    const groups = uniqueInOrder(spec.rows.map((row) => String(row[spec.group])));
    const valueKey = spec.series[0].key;
    const datasets = groups.map((group, index) => {
      const byX = new Map();
      spec.rows
        .filter((row) => String(row[spec.group]) === group)
        .forEach((row) => byX.set(String(row[spec.x]), row[valueKey]));
      return {
        label: group,
        data: labels.map((label) => (byX.has(label) ? byX.get(label) : null)),
        borderColor: colour(index),
        backgroundColor: colour(index),
        spanGaps: true,
      };
    });
    return {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: { scales: { x: axis(spec.x_label), y: axis(spec.y_label) } },
    };
  }

  function intervalConfig(spec) {
    const labels = spec.rows.map((row) => String(row[spec.x]));
    return {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          {
            type: "bar",
            label: "95% interval",
            data: spec.rows.map((row) => (row.lower === null || row.upper === null ? null : [row.lower, row.upper])),
            backgroundColor: FAINT,
            borderColor: colour(0),
            borderWidth: 1,
          },
          {
            type: "line",
            label: "score",
            data: spec.rows.map((row) => row.score),
            showLine: false,
            pointRadius: 5,
            borderColor: colour(1),
            backgroundColor: colour(1),
          },
        ],
      },
      options: { scales: { x: axis(spec.x_label), y: axis(spec.y_label) } },
    };
  }

  function isoMinute(milliseconds) {
    return new Date(milliseconds).toISOString().slice(0, 16).replace("T", " ");
  }

  function timelineConfig(spec) {
    const kinds = uniqueInOrder(spec.rows.map((row) => row.kind)).sort();
    const byId = new Map(spec.rows.map((row) => [row.id, row]));
    const point = (row) => ({ x: Date.parse(row.created), y: row.kind, version: row.version });
    const datasets = kinds.map((kind, index) => ({
      label: kind,
      data: spec.rows.filter((row) => row.kind === kind).map(point),
      backgroundColor: colour(index),
      borderColor: colour(index),
      pointRadius: 5,
    }));
    spec.rows
      .filter((row) => row.parent_id !== null && byId.has(row.parent_id))
      .forEach((row) => {
        datasets.push({
          label: "parent → child",
          data: [point(byId.get(row.parent_id)), point(row)],
          showLine: true,
          borderColor: "#888",
          backgroundColor: "#888",
          pointRadius: 0,
          borderWidth: 1,
        });
      });
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        scales: {
          x: axis(spec.x_label, { type: "linear", ticks: { callback: (value) => isoMinute(value), maxTicksLimit: 6 } }),
          y: axis(spec.y_label, { type: "category", labels: kinds, offset: true }),
        },
        plugins: {
          legend: {
            labels: {
              // one legend entry for all the lineage lines
              filter: (item, data) =>
                data.datasets.findIndex((dataset) => dataset.label === item.text) === item.datasetIndex,
            },
          },
          tooltip: {
            callbacks: {
              label: (context) =>
                context.raw && context.raw.version ? `${context.raw.version} (${isoMinute(context.raw.x)} UTC)` : "",
            },
          },
        },
      },
    };
  }

  function configFor(spec) {
    switch (spec.chart) {
      case "bar":
        return categoryConfig(spec, {});
      case "stacked":
        return categoryConfig(spec, { stacked: true });
      case "hbar":
        return categoryConfig(spec, { horizontal: true });
      case "line":
        return lineConfig(spec);
      case "interval":
        return intervalConfig(spec);
      case "timeline":
        return timelineConfig(spec);
      default:
        throw new Error(`unknown chart ${spec.chart}`);
    }
  }

  function draw(canvas) {
    const block = document.getElementById(`plot-data-${canvas.dataset.plot}`);
    const spec = JSON.parse(block.textContent);
    const config = configFor(spec);
    config.options = Object.assign(config.options || {}, {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
    });
    config.options.plugins = Object.assign(config.options.plugins || {}, {
      title: { display: false, text: spec.title },
    });
    if (spec.y_range && config.options.scales) {
      // the value axis: y, or x for horizontal bars
      const valueAxis = config.options.indexAxis === "y" ? "x" : "y";
      config.options.scales[valueAxis].min = spec.y_range[0];
      config.options.scales[valueAxis].max = spec.y_range[1];
    }
    new window.Chart(canvas, config);
    canvas.dataset.rendered = "true";
  }

  function drawAll() {
    window.Chart.defaults.color = "#ccc";
    window.Chart.defaults.borderColor = "#333";
    document.querySelectorAll("canvas[data-plot]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
